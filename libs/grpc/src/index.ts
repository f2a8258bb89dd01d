export { ServiceError, Status, invalidArgument, notFound, unavailable, resourceExhausted, deadlineExceeded, cancelled } from './errors.js';
export { statusOf, boundedDetails, MAX_DETAILS_BYTES, type StatusOf, type CodedError } from './status.js';
export { injectTraceContext, extractTraceContext } from './trace-metadata.js';
export { createGrpcServer, withSpan, startServerSpan, failedCall, type GrpcServer, type GrpcServerOptions, type AddServiceOptions, type CallContext, type UnaryHandler, type BidiHandler, type ServerStreamHandler, type ServiceHandlers } from './server.js';
export { clientOptions, unaryCall, type UnaryCallOptions } from './client.js';
export { serveStream, serveInferStream, undecodableAsMessages, UndecodableMessage, type StreamOptions } from './stream.js';
export { runService, type StartService } from './lifecycle.js';
export { atDeadline, MAX_TIMER_MS, type DeadlineTimer } from './deadline.js';
export {
  MESH_CHANNEL_OPTIONS, meshTlsFromConfig, loadMeshTls, meshServerCredentials, meshChannelCredentials, publicServerCredentials, callerIdentities, identitiesOf, identityUri,
  TlsConfigError, ROLES, TRUST_DOMAIN, type Identity, type Role, type MeshTls, type MeshTlsFiles,
} from './tls.js';
export { DEFAULT_HTTP2_LIMITS, http2LimitsOf, type Http2Limits } from './http2-limits.js';
export { issueDevCertificates, meshTlsSettings, type DevCertificates, type Holder, type IssuedFiles } from './dev-certs.js';
