#!/usr/bin/env node
// Minimal grpc.health.v1.Health/Check client for container health checks, so the image
// needs no grpc_health_probe binary. Used by deploy/compose/compose.yaml; Kubernetes uses
// its native gRPC probes instead.
//
//   node deploy/docker/grpc-health-probe.mjs [host:port] [service]
//
// Exit 0 when the server answers SERVING, 1 otherwise (unreachable, timeout, NOT_SERVING,
// UNKNOWN, or NOT_FOUND for an unknown service name). Defaults: 127.0.0.1:8001, service "".
// Messages are encoded by hand (one string field in, one enum field out), so only
// @grpc/grpc-js is needed, resolved from the app's node_modules.
import grpc from '@grpc/grpc-js';

const address = process.argv[2] ?? '127.0.0.1:8001';
const service = process.argv[3] ?? '';
const timeoutMs = Number(process.env.HEALTH_PROBE_TIMEOUT_MS ?? 2000);
const SERVING = 1;

/** HealthCheckRequest { string service = 1; } */
function encodeRequest(name) {
  const bytes = Buffer.from(name, 'utf8');
  if (bytes.length === 0) return Buffer.alloc(0);
  const len = [];
  let n = bytes.length;
  while (n > 0x7f) { len.push((n & 0x7f) | 0x80); n >>>= 7; }
  len.push(n);
  return Buffer.concat([Buffer.from([0x0a, ...len]), bytes]);
}

/** HealthCheckResponse { ServingStatus status = 1; } -> the status number (0 when absent). */
function decodeStatus(buf) {
  let i = 0;
  const varint = () => {
    let result = 0, shift = 0, b;
    do { b = buf[i++]; result += (b & 0x7f) * 2 ** shift; shift += 7; } while (b & 0x80 && i < buf.length);
    return result;
  };
  let status = 0;
  while (i < buf.length) {
    const key = varint();
    const field = Math.floor(key / 8), wire = key & 7;
    if (wire === 0) { const v = varint(); if (field === 1) status = v; }
    else if (wire === 2) { i += varint(); }
    else if (wire === 1) { i += 8; }
    else if (wire === 5) { i += 4; }
    else break;
  }
  return status;
}

const client = new grpc.Client(address, grpc.credentials.createInsecure());
client.makeUnaryRequest(
  '/grpc.health.v1.Health/Check',
  (req) => req,
  (buf) => buf,
  encodeRequest(service),
  { deadline: Date.now() + timeoutMs },
  (err, res) => {
    client.close();
    if (err) {
      console.error(`health ${address} ${JSON.stringify(service)}: ${err.message}`);
      process.exit(1);
    }
    const status = decodeStatus(res);
    if (status !== SERVING) console.error(`health ${address} ${JSON.stringify(service)}: status ${status}`);
    process.exit(status === SERVING ? 0 : 1);
  },
);
