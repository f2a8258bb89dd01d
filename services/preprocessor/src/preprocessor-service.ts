/**
 * infermesh.v1.Preprocessor: the images of one or more requests → one pixel frame per
 * request. Each request's item is answered on its own (an image that cannot be read fails
 * only its request), and each gets a span in its request's own trace.
 */
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, propagation, trace } from '@opentelemetry/api';
import { decodeBytesElements, TensorError } from '@infermesh/tensor';
import type { PreprocessRequest__Output, PreprocessResponse, PreprocessResult } from '@infermesh/contracts';
import { resourceExhausted, type ServiceHandlers } from '@infermesh/grpc';
import { checkPipeline, imagesToPixels } from './image-pipeline.js';

const tracer = trace.getTracer('infermesh-preprocessor');

/**
 * `maxMessageBytes` bounds the answer: the frames of a call (count × height × width × 3)
 * must fit one message, which is checked from the images' count before anything is decoded.
 */
export async function preprocess(request: PreprocessRequest__Output, maxMessageBytes = Number.MAX_SAFE_INTEGER): Promise<PreprocessResponse> {
  const spec = checkPipeline(request.pipeline, request.modelName);
  const items = request.items.map((item) => {
    try {
      return { item, images: decodeBytesElements(spec.input, item.images) };
    } catch (error) {
      return { item, error: error as Error };
    }
  });
  const frame = spec.width * spec.height * 3;
  const pixels = items.reduce((sum, i) => sum + (i.images?.length ?? 0) * frame, 0);
  if (pixels > maxMessageBytes) {
    throw resourceExhausted(`the call's ${items.reduce((n, i) => n + (i.images?.length ?? 0), 0)} images make ${pixels} bytes of pixels, over the ${maxMessageBytes}-byte message limit; send fewer at once`);
  }
  const results = await Promise.all(items.map(async ({ item, images, error: unreadable }): Promise<PreprocessResult> => {
    const parent = item.traceparent ? propagation.extract(ROOT_CONTEXT, { traceparent: item.traceparent }) : ROOT_CONTEXT;
    const span = tracer.startSpan(`preprocess ${request.modelName}`, { kind: SpanKind.SERVER, attributes: { 'infermesh.model': request.modelName } }, parent);
    try {
      if (unreadable || !images) throw unreadable;
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

export function preprocessorHandlers(maxMessageBytes: number): ServiceHandlers {
  return { Preprocess: (request: PreprocessRequest__Output) => preprocess(request, maxMessageBytes) };
}
