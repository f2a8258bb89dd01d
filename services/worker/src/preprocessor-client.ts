/**
 * The worker's calls to the preprocessor: the images of several requests go in one call and
 * come back as UINT8 pixels, one result per request. The call itself has no span: each
 * request's trace context travels in its item, and the preprocessor adds its span to each.
 */
import * as grpc from '@grpc/grpc-js';
import { preprocessorService, type ImagePipeline, type PreprocessItem, type PreprocessRequest, type PreprocessResponse__Output, type PreprocessResult__Output } from '@infermesh/contracts';
import { clientOptions, meshChannelCredentials, MESH_CHANNEL_OPTIONS, unavailable, type MeshTls } from '@infermesh/grpc';

export interface PreprocessorClient {
  /** One result per item, in order; rejects only when the call as a whole fails. */
  preprocess(model: string, pipeline: ImagePipeline, items: PreprocessItem[], options: { deadlineMs: number; signal?: AbortSignal }): Promise<PreprocessResult__Output[]>;
  close(): void;
}

type Method = grpc.MethodDefinition<PreprocessRequest, PreprocessResponse__Output>;

export function preprocessorClient(address: string, maxMessageBytes: number, tls?: MeshTls): PreprocessorClient {
  const client = new grpc.Client(address, meshChannelCredentials(tls, { role: 'preprocessor' }), { ...clientOptions(maxMessageBytes), ...MESH_CHANNEL_OPTIONS });
  const method = preprocessorService().Preprocess as unknown as Method;
  return {
    preprocess: (model, pipeline, items, options) =>
      new Promise((resolve, reject) => {
        const onAbort = () => call.cancel();
        const call = client.makeUnaryRequest(method.path, method.requestSerialize, method.responseDeserialize, { modelName: model, pipeline, items }, new grpc.Metadata(), { deadline: options.deadlineMs }, (error, response) => {
          options.signal?.removeEventListener('abort', onAbort);
          if (!error) {
            if (response!.results.length !== items.length) reject(new Error(`the preprocessor answered ${response!.results.length} of ${items.length} items`));
            else resolve(response!.results);
            return;
          }
          // Say which hop failed: the client only sees the router.
          if (error.code === grpc.status.UNAVAILABLE) reject(unavailable(`the preprocessor at ${address} is unavailable: ${error.details}`));
          else reject(error);
        });
        if (options.signal?.aborted) call.cancel();
        else options.signal?.addEventListener('abort', onAbort, { once: true });
      }),
    close: () => client.close(),
  };
}
