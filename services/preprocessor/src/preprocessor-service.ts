/**
 * infermesh.v1.Preprocessor: the images of one or more requests → one pixel frame per
 * request. Each request's item is answered on its own (an image that cannot be read fails
 * only its request), and each gets a span in its request's own trace.
 */
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, propagation, trace } from '@opentelemetry/api';
import { decodeBytesElements, TensorError } from '@infermesh/tensor';
import { PREPROCESS_ERROR_BYTES, preprocessResultBytes, type PreprocessRequest__Output, type OcrCropRequest__Output, type PreprocessResponse, type PreprocessResult } from '@infermesh/contracts';
import { boundedDetails, resourceExhausted, type CallContext, type ServiceHandlers } from '@infermesh/grpc';
import { checkPipeline, preprocessImages } from './image-pipeline.js';
import { DEFAULT_PREPROCESS_LIMITS, type PreprocessLimits } from './image-limits.js';
import { ocrCrop } from './ocr-crop.js';

const tracer = trace.getTracer('infermesh-preprocessor');

/**
 * `maxMessageBytes` bounds the answer: each item's frames (count × height × width × 3), or
 * its error message, plus the framing, must fit one message. That is checked from the
 * images' count before anything is decoded; each item is then held to `limits` from its
 * images' count and headers (image-limits.ts). `signal` ends the decoding of a call that ended.
 */
export async function preprocess(request: PreprocessRequest__Output, maxMessageBytes = Number.MAX_SAFE_INTEGER, signal?: AbortSignal, limits: PreprocessLimits = DEFAULT_PREPROCESS_LIMITS): Promise<PreprocessResponse> {
  const spec = checkPipeline(request.pipeline, request.modelName, limits);
  const items = request.items.map((item) => {
    try {
      return { item, images: decodeBytesElements(spec.input, item.images) };
    } catch (error) {
      return { item, error: error as Error };
    }
  });
  const frame = spec.width * spec.height * 3;
  const imageCount = items.reduce((n, i) => n + (i.images?.length ?? 0), 0);
  const answer = items.reduce((sum, i) => sum + preprocessResultBytes(i.images?.length ?? 0, frame), 0);
  if (answer > maxMessageBytes) {
    throw resourceExhausted(`the call's ${imageCount} images would answer ${answer} bytes of pixels and framing, over the ${maxMessageBytes}-byte message limit; send fewer at once`);
  }
  const results = await Promise.all(items.map(async ({ item, images, error: unreadable }): Promise<PreprocessResult> => {
    const parent = item.traceparent ? propagation.extract(ROOT_CONTEXT, { traceparent: item.traceparent }) : ROOT_CONTEXT;
    const span = tracer.startSpan(`preprocess ${request.modelName}`, { kind: SpanKind.SERVER, attributes: { 'infermesh.model': request.modelName } }, parent);
    try {
      if (unreadable || !images) throw unreadable;
      span.setAttribute('infermesh.images', images.length);
      const { pixels, statistics } = await preprocessImages(spec, spec.input, images, signal, limits);
      return { pixels, count: images.length, statistics };
    } catch (error) {
      if (!(error instanceof TensorError)) throw error;
      span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
      return { error: boundedDetails(error.message, PREPROCESS_ERROR_BYTES) };
    } finally {
      span.end();
    }
  }));
  return { results };
}

export function preprocessorHandlers(maxMessageBytes: number, limits: PreprocessLimits = DEFAULT_PREPROCESS_LIMITS): ServiceHandlers {
  return {
    Preprocess: (request: PreprocessRequest__Output, ctx: CallContext) => preprocess(request, maxMessageBytes, ctx.signal, limits),
    OcrCrop: (request: OcrCropRequest__Output, ctx: CallContext) => ocrCrop(request, maxMessageBytes, ctx.signal, limits),
  };
}
