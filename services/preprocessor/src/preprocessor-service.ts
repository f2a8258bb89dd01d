import { decodeInputs, encodeRaw, TensorError } from '@infermesh/tensor';
import { invalidArgument, type CallContext, type ServiceHandlers } from '@infermesh/grpc';
import type { PreprocessRequest__Output, PreprocessResponse } from '@infermesh/contracts';
import { runImagePipeline } from './image-pipeline.js';
import { runTabularPipeline } from './tabular-pipeline.js';

/** Applies the request's pipeline to its raw input; every other input passes through (re-encoded raw). */
export async function preprocess(request: PreprocessRequest__Output): Promise<PreprocessResponse> {
  const pipeline = request.pipeline;
  const spec = pipeline?.image ?? pipeline?.tabular;
  if (!pipeline || !spec) throw invalidArgument(`no preprocessing pipeline given for model '${request.modelName}'`);
  const tensors = decodeInputs(request.inputs, request.rawInputContents);
  const raw = tensors.find((t) => t.name === spec.input);
  if (!raw) throw new TensorError(`model '${request.modelName}' expects input '${spec.input}'`);
  if (raw.shape.length === 0 || raw.shape.slice(1).some((d) => d !== 1)) {
    throw new TensorError(`input '${raw.name}': shape [${raw.shape.join(', ')}], expected [N] (one element per item)`);
  }
  const tensor = pipeline.image ? await runImagePipeline(pipeline.image, raw) : runTabularPipeline(pipeline.tabular!, raw);
  const outputs = tensors.map((t) => (t === raw ? tensor : t));
  return {
    inputs: outputs.map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape.map(String) })),
    rawInputContents: outputs.map((t) => encodeRaw(t.data)),
  };
}

export function preprocessorHandlers(): ServiceHandlers {
  return {
    Preprocess: async (request: PreprocessRequest__Output, ctx: CallContext) => {
      ctx.span.setAttributes({ 'infermesh.model': request.modelName, 'infermesh.pipeline': request.pipeline?.image ? 'image' : 'tabular' });
      return preprocess(request);
    },
  };
}
