/**
 * The router's client of the preprocessor's OcrCrop: the glue of OCR pipelines. Mesh mTLS as
 * the worker's preprocessor client; the preprocessor lets routers call it.
 */
import * as grpc from '@grpc/grpc-js';
import { preprocessorService, type OcrCropRequest, type OcrCropResponse__Output } from '@infermesh/contracts';
import { clientOptions, meshChannelCredentials, MESH_CHANNEL_OPTIONS, unavailable, type MeshTls } from '@infermesh/grpc';

export interface OcrGlue {
  /** Rejects with the preprocessor's status (INVALID_ARGUMENT naming what was wrong, ...). */
  ocrCrop(request: OcrCropRequest, options: { deadlineMs: number; signal: AbortSignal }): Promise<OcrCropResponse__Output>;
  close(): void;
}

type Method = grpc.MethodDefinition<OcrCropRequest, OcrCropResponse__Output>;

export function ocrGlueClient(address: string, maxMessageBytes: number, tls?: MeshTls): OcrGlue {
  const client = new grpc.Client(address, meshChannelCredentials(tls, { role: 'preprocessor' }), { ...clientOptions(maxMessageBytes), ...MESH_CHANNEL_OPTIONS });
  const method = preprocessorService().OcrCrop as unknown as Method;
  return {
    ocrCrop: (request, options) =>
      new Promise((resolve, reject) => {
        const onAbort = () => call.cancel();
        const call = client.makeUnaryRequest(method.path, method.requestSerialize, method.responseDeserialize, request, new grpc.Metadata(), { deadline: options.deadlineMs }, (error, response) => {
          options.signal.removeEventListener('abort', onAbort);
          if (!error) resolve(response!);
          else if (error.code === grpc.status.UNAVAILABLE) reject(unavailable(`the preprocessor at ${address} is unavailable: ${error.details}`));
          else reject(error);
        });
        if (options.signal.aborted) call.cancel();
        else options.signal.addEventListener('abort', onAbort, { once: true });
      }),
    close: () => client.close(),
  };
}

/** The glue of a router without PREPROCESSOR_ADDRESS: pipelines that need it are UNAVAILABLE, saying why. */
export const noOcrGlue: OcrGlue = {
  ocrCrop: () => Promise.reject(unavailable('this router has no preprocessor to call (PREPROCESSOR_ADDRESS is not set)')),
  close: () => undefined,
};
