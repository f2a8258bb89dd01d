import * as grpc from '@grpc/grpc-js';
import { contracts, type PreprocessRequest, type PreprocessResponse__Output, type PreprocessorClient as GeneratedClient } from '@infermesh/contracts';
import { clientOptions, unaryCall, unavailable } from '@infermesh/grpc';

export interface PreprocessorClient {
  preprocess(request: PreprocessRequest, options: { deadline: number; signal: AbortSignal }): Promise<PreprocessResponse__Output>;
  close(): void;
}

export function preprocessorClient(address: string, maxMessageBytes: number): PreprocessorClient {
  const Client = contracts().infermesh.v1.Preprocessor;
  const client: GeneratedClient = new Client(address, grpc.credentials.createInsecure(), clientOptions(maxMessageBytes));
  return {
    preprocess: (request, options) =>
      unaryCall<PreprocessRequest, PreprocessResponse__Output>(client, client.Preprocess, request, { ...options, spanName: 'preprocessor Preprocess' }).catch((error: grpc.ServiceError) => {
        // Say which hop failed: the client only sees the router.
        if (error.code === grpc.status.UNAVAILABLE) throw unavailable(`the preprocessor at ${address} is unavailable: ${error.details}`);
        throw error;
      }),
    close: () => client.close(),
  };
}
