/**
 * The contracts of the mesh: the .proto files under proto/ loaded once, with one set of
 * loader options, and the TypeScript types generated from the same files.
 */
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';
import type { ProtoGrpcType as InferenceProto } from './generated/grpc_service.js';
import type { ProtoGrpcType as PreprocessorProto } from './generated/preprocessor.js';
import type { ProtoGrpcType as MonitorProto } from './generated/monitor.js';
import type { ProtoGrpcType as WorkerProto } from './generated/worker.js';
import type { ProtoGrpcType as FeedbackProto } from './generated/feedback.js';

export const PROTO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '../../../proto');

export const PROTO_FILES = [
  'inference/grpc_service.proto',
  'inference/model_config.proto',
  'infermesh/v1/pipeline.proto',
  'infermesh/v1/preprocessor.proto',
  'infermesh/v1/worker.proto',
  'infermesh/v1/events.proto',
  'infermesh/v1/monitor.proto',
  'infermesh/v1/feedback.proto',
  'infermesh/v1/traffic.proto',
  'infermesh/v1/control.proto',
] as const;

/** The options every loader in the mesh uses; the generated types assume them. */
export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_ROOT],
};

export type Contracts = InferenceProto & PreprocessorProto & MonitorProto & WorkerProto & FeedbackProto;

let cached: { definition: protoLoader.PackageDefinition; contracts: Contracts } | undefined;

function load() {
  if (!cached) {
    const definition = protoLoader.loadSync([...PROTO_FILES], LOADER_OPTIONS);
    const contracts = grpc.loadPackageDefinition(definition) as unknown as Contracts;
    cached = { definition, contracts };
  }
  return cached;
}

/** The package definition, for server reflection. */
export function packageDefinition(): protoLoader.PackageDefinition {
  return load().definition;
}

export function contracts(): Contracts {
  return load().contracts;
}

export function inferenceService(): grpc.ServiceDefinition {
  return contracts().inference.GRPCInferenceService.service as unknown as grpc.ServiceDefinition;
}

export function preprocessorService(): grpc.ServiceDefinition {
  return contracts().infermesh.v1.Preprocessor.service as unknown as grpc.ServiceDefinition;
}

export function workerService(): grpc.ServiceDefinition {
  return contracts().infermesh.v1.Worker.service as unknown as grpc.ServiceDefinition;
}

export function monitorService(): grpc.ServiceDefinition {
  return contracts().infermesh.v1.Monitor.service as unknown as grpc.ServiceDefinition;
}

export function feedbackService(): grpc.ServiceDefinition {
  return contracts().infermesh.v1.FeedbackService.service as unknown as grpc.ServiceDefinition;
}

let root: protobuf.Root | undefined;

/**
 * Binary codec for a message carried outside gRPC (NATS events). Decoded objects have
 * the same shape as the generated `__Output` types, because they are converted with the
 * loader options above.
 */
export interface MessageCodec<In, Out> {
  encode(message: In): Uint8Array;
  decode(bytes: Uint8Array): Out;
}

export function messageCodec<In, Out>(typeName: string): MessageCodec<In, Out> {
  if (!root) {
    root = new protobuf.Root();
    root.resolvePath = (_origin, target) => (target.startsWith('/') ? target : join(PROTO_ROOT, target));
    root.loadSync([...PROTO_FILES], { keepCase: false });
    root.resolveAll();
  }
  const type = root.lookupType(typeName);
  return {
    encode: (message) => type.encode(type.fromObject(message as Record<string, unknown>)).finish(),
    decode: (bytes) =>
      type.toObject(type.decode(bytes), { longs: String, enums: String, defaults: true, oneofs: true }) as Out,
  };
}

export type * from './generated/index.js';
export * from './wire.js';
export { uuidv7 } from './uuidv7.js';
export { controlCodecs, MAX_CONTROL_MESSAGE } from './control.js';

export { subjects, streamName, token, keptPredictionsBucket, trafficBucket, type Subjects, type StreamKind } from './subjects.js';
export { natsAuthorization, rolePermissions, inboxPrefixOf, NATS_ROLES, type NatsRole, type NatsPassword, type Permissions } from './nats-permissions.js';
