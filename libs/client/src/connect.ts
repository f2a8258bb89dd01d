import { parseAddress } from './address.js';
import { GrpcInferenceClient } from './grpc/client.js';
import { RestInferenceClient } from './rest/client.js';
import type { ClientOptions, InferenceClient } from './types.js';

/**
 * A client for the server at `address`: 'grpc://host:port', 'grpcs://host:port', bare
 * 'host:port' (gRPC), or 'http://host:port' / 'https://host:port' (REST). Nothing is dialled
 * until the first call.
 */
export function connect(address: string, options: ClientOptions = {}): InferenceClient {
  const endpoint = parseAddress(address, options.tls !== undefined);
  return endpoint.protocol === 'grpc'
    ? new GrpcInferenceClient(endpoint.target, options, endpoint.tls)
    : new RestInferenceClient(endpoint.baseUrl.href, options);
}
