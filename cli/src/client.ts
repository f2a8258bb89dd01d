import * as grpc from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { contracts, type FeedbackServiceClient, type GRPCInferenceServiceClient, type MonitorClient } from '@infermesh/contracts';
import { loadMeshTls, meshChannelCredentials, meshTlsFromConfig, MESH_CHANNEL_OPTIONS, type MeshTls } from '@infermesh/grpc';

export const DEFAULT_ROUTER = process.env.INFERMESH_ADDRESS ?? '127.0.0.1:8001';
export const DEFAULT_MONITOR = process.env.INFERMESH_MONITOR_ADDRESS ?? '127.0.0.1:8004';

const options = { 'grpc.max_receive_message_length': 256 * 1024 * 1024, 'grpc.max_send_message_length': 256 * 1024 * 1024 };

/** Sends `key` with every call, as the router reads it: `authorization: Bearer <key>`. */
function sendingApiKey(key: string): grpc.Interceptor {
  return (callOptions, nextCall) =>
    new grpc.InterceptingCall(nextCall(callOptions), {
      start(metadata, listener, next) {
        metadata.set('authorization', `Bearer ${key}`);
        next(metadata, listener);
      },
    });
}

export function routerClient(address: string): GRPCInferenceServiceClient {
  const key = process.env.INFERMESH_API_KEY?.trim();
  return new (contracts().inference.GRPCInferenceService)(address, grpc.credentials.createInsecure(), key ? { ...options, interceptors: [sendingApiKey(key)] } : options);
}

/** The router's FeedbackService (same address and API key as inference). */
export function feedbackClient(address: string): FeedbackServiceClient {
  const key = process.env.INFERMESH_API_KEY?.trim();
  return new (contracts().infermesh.v1.FeedbackService)(address, grpc.credentials.createInsecure(), key ? { ...options, interceptors: [sendingApiKey(key)] } : options);
}

/** Written by `infermesh up` while it runs: where its monitor is and the operator's certificate for it. */
export const RUNNING_MESH_FILE = join(fileURLToPath(new URL('../../', import.meta.url)), '.data', 'up.json');

export interface RunningMesh {
  pid: number;
  monitor: string;
  nats: { url: string; settings: Record<string, string> };
  operatorTls: { caFile: string; certFile: string; keyFile: string };
}

export function runningMesh(): RunningMesh | undefined {
  try {
    const mesh = JSON.parse(readFileSync(RUNNING_MESH_FILE, 'utf8')) as RunningMesh;
    process.kill(mesh.pid, 0); // still running?
    return mesh;
  } catch {
    return undefined;
  }
}

/**
 * The operator's mesh certificate, for the monitor's API under mutual TLS: MESH_TLS_* when set,
 * else the one of the mesh `infermesh up` runs here (when `address` is its monitor), else none.
 */
function operatorTls(address: string): MeshTls | undefined {
  const fromEnv = meshTlsFromConfig(process.env);
  if (fromEnv) return fromEnv;
  const mesh = runningMesh();
  return mesh && mesh.monitor === address ? loadMeshTls(mesh.operatorTls) : undefined;
}

export function monitorClient(address: string): MonitorClient {
  return new (contracts().infermesh.v1.Monitor)(address, meshChannelCredentials(operatorTls(address), { role: 'monitor' }), { ...options, ...MESH_CHANNEL_OPTIONS });
}

/** Promisifies a generated unary method. */
export function call<Req, Res>(
  client: grpc.Client,
  method: (req: Req, meta: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Res) => void) => grpc.ClientUnaryCall,
  request: Req,
  timeoutMs = 30_000,
): Promise<Res> {
  return new Promise((resolve, reject) =>
    method.call(client, request, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (error, response) => (error ? reject(error) : resolve(response as Res))),
  );
}

/** One line for a failed call: the status name and the server's message. */
export function describeError(error: unknown): string {
  const e = error as grpc.ServiceError;
  if (e?.code === grpc.status.UNAVAILABLE && /ECONNREFUSED|No connection established/.test(e.details)) {
    const address = /connect ECONNREFUSED ([^\s,]+?)\.?(?:\s|$)/.exec(e.details)?.[1];
    return `cannot reach ${address ?? 'the server'}: is the mesh running? (npm start, or --address HOST:PORT)`;
  }
  if (e?.code === grpc.status.UNAUTHENTICATED) return `UNAUTHENTICATED: ${e.details} (the CLI sends the key in INFERMESH_API_KEY)`;
  if (typeof e?.code === 'number') return `${grpc.status[e.code]}: ${e.details}`;
  return (error as Error)?.message ?? String(error);
}
