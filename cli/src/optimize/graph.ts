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
import ort from 'onnxruntime-node';

export const GRAPH_LEVELS = ['basic', 'extended', 'all'] as const;
export type GraphLevel = (typeof GRAPH_LEVELS)[number];
export const DEFAULT_GRAPH_LEVEL: GraphLevel = 'basic';

export function isGraphLevel(value: string): value is GraphLevel {
  return (GRAPH_LEVELS as readonly string[]).includes(value);
}

/** Optimizes the model at `modelPath` and writes the optimized graph to `outputPath`. */
export async function optimizeGraph(modelPath: string, outputPath: string, level: GraphLevel = DEFAULT_GRAPH_LEVEL): Promise<void> {
  // Creating the session is what runs the optimizers and serializes the result.
  const session = await ort.InferenceSession.create(modelPath, { graphOptimizationLevel: level, optimizedModelFilePath: outputPath, logSeverityLevel: 3 });
  await session.release();
}
