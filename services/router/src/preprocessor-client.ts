import * as grpc from '@grpc/grpc-js';
import { contracts, type PreprocessRequest, type PreprocessResponse__Output, type PreprocessorClient as GeneratedClient } from '@infermesh/contracts';
import { clientOptions, unaryCall } from '@infermesh/grpc';

export interface PreprocessorClient {
  preprocess(request: PreprocessRequest, options: { deadline: number; signal: AbortSignal }): Promise<PreprocessResponse__Output>;
  close(): void;
}

export function preprocessorClient(address: string, maxMessageBytes: number): PreprocessorClient {
  const Client = contracts().infermesh.v1.Preprocessor;
  const client: GeneratedClient = new Client(address, grpc.credentials.createInsecure(), clientOptions(maxMessageBytes));
  return {
    preprocess: (request, options) => unaryCall(client, client.Preprocess, request, { ...options, spanName: 'preprocessor Preprocess' }),
    close: () => client.close(),
  };
}
