/**
 * infermesh.v1.Preprocessor: the images of one or more requests → one pixel frame per
 * request. Each request's item is answered on its own (an image that cannot be read fails
 * only its request), and each gets a span in its request's own trace.
 */
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, propagation, trace } from '@opentelemetry/api';
import { decodeBytesElements, TensorError } from '@infermesh/tensor';
import type { PreprocessRequest__Output, PreprocessResponse, PreprocessResult } from '@infermesh/contracts';
import type { ServiceHandlers } from '@infermesh/grpc';
import { checkPipeline, imagesToPixels } from './image-pipeline.js';

const tracer = trace.getTracer('infermesh-preprocessor');

export async function preprocess(request: PreprocessRequest__Output): Promise<PreprocessResponse> {
  const spec = checkPipeline(request.pipeline, request.modelName);
  const results = await Promise.all(request.items.map(async (item): Promise<PreprocessResult> => {
    const parent = item.traceparent ? propagation.extract(ROOT_CONTEXT, { traceparent: item.traceparent }) : ROOT_CONTEXT;
    const span = tracer.startSpan(`preprocess ${request.modelName}`, { kind: SpanKind.SERVER, attributes: { 'infermesh.model': request.modelName } }, parent);
    try {
      const images = decodeBytesElements(spec.input, item.images);
      span.setAttribute('infermesh.images', images.length);
      return { pixels: await imagesToPixels(spec, spec.input, images), count: images.length };
    } catch (error) {
      if (!(error instanceof TensorError)) throw error;
      span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
      return { error: error.message };
    } finally {
      span.end();
    }
  }));
  return { results };
}

export function preprocessorHandlers(): ServiceHandlers {
  return { Preprocess: (request: PreprocessRequest__Output) => preprocess(request) };
}
