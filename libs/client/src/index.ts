/**
 * @infermesh/client: a client for any Open Inference Protocol (KServe v2) server, gRPC and
 * REST (Triton, KServe, infermesh). Start with connect().
 */
export { connect } from './connect.js';
export { GrpcInferenceClient, type GrpcClientOptions } from './grpc/client.js';
export { RestInferenceClient } from './rest/client.js';
export { tensor, fp16 } from './tensor.js';
export { InferenceError, type StatusName } from './errors.js';
export type {
  CallOptions, ClientOptions, Datatype, InferenceClient, InferRequest, InferResult, ModelMetadata, ModelStatistics,
  Parameters, RepositoryModel, RequestedOutput, ServerMetadata, StatisticDuration, StreamOptions, StreamResult, Tensor,
  TensorData, TensorMetadata, TlsOptions,
} from './types.js';
