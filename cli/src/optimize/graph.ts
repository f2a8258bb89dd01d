/**
 * onnxruntime's graph optimizations, run once and saved to a file (offline), so a worker loads a
 * model that is already folded and fused.
 *
 * The level decides where the saved file can run (measured on text-direction, onnxruntime 1.30):
 *   - basic:    standard ONNX operators only (constants folded into initializers, BatchNormalization
 *               folded into Conv, MatMul + Add into Gemm): runs on every execution provider. Default.
 *   - extended: adds com.microsoft contrib operators (FusedConv: Conv + Relu), which only
 *               onnxruntime's CPU and CUDA providers implement (not TensorRT, not other runtimes).
 *   - all:      adds the CPU provider's NCHWc layout (com.microsoft.nchwc operators, 35 reorders
 *               on text-direction, a larger file); onnxruntime itself warns such a file should only
 *               be used on the machine that made it.
 * A worker still applies 'all' when it loads a model, so the layout work happens there anyway.
 */
import { readFile, writeFile } from 'node:fs/promises';
import ort from 'onnxruntime-node';
import { decodeModel, encodeModel, type ModelProto, type NodeProto } from './onnx-model.js';

export const GRAPH_LEVELS = ['basic', 'extended', 'all'] as const;
export type GraphLevel = (typeof GRAPH_LEVELS)[number];
export const DEFAULT_GRAPH_LEVEL: GraphLevel = 'basic';

export function isGraphLevel(value: string): value is GraphLevel {
  return (GRAPH_LEVELS as readonly string[]).includes(value);
}

/**
 * Drops the operator-set imports no node uses: onnxruntime writes every domain it knows (nine on
 * onnxruntime 1.30), which makes a tiny model like iris larger than it was. The default domain stays.
 */
export function pruneOpsetImports(model: ModelProto): number {
  const used = new Set<string>();
  const visit = (nodes: readonly NodeProto[] | null | undefined): void => {
    for (const node of nodes ?? []) {
      used.add(node.domain === 'ai.onnx' ? '' : (node.domain ?? ''));
      for (const attribute of node.attribute ?? []) {
        if (attribute.g) visit(attribute.g.node);
        for (const graph of attribute.graphs ?? []) visit(graph.node);
      }
    }
  };
  visit(model.graph?.node);
  const before = model.opsetImport.length;
  model.opsetImport = model.opsetImport.filter((o) => !o.domain || o.domain === 'ai.onnx' || used.has(o.domain));
  return before - model.opsetImport.length;
}

/** Optimizes the model at `modelPath` and writes the optimized graph to `outputPath`. */
export async function optimizeGraph(modelPath: string, outputPath: string, level: GraphLevel = DEFAULT_GRAPH_LEVEL): Promise<void> {
  // Creating the session is what runs the optimizers and serializes the result.
  const session = await ort.InferenceSession.create(modelPath, { graphOptimizationLevel: level, optimizedModelFilePath: outputPath, logSeverityLevel: 3 });
  await session.release();
  const model = decodeModel(await readFile(outputPath));
  if (pruneOpsetImports(model) > 0) await writeFile(outputPath, encodeModel(model));
}
