/**
 * A small Open Inference Protocol REST server (node:http) for the client's tests, written from
 * the KServe v2 / Triton HTTP specification, not from the client's code. Models as in the gRPC
 * stand-in: echo (each input back as an output of the same name: JSON data as it came, digit for
 * digit, binary data as binary), fail (400 with infermesh-grpc-status), denied (403, no status
 * header), slow (never answers), held (answers after release()).
 */
import { createServer, type IncomingMessage, type RequestListener, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const MODELS = ['echo', 'fail', 'denied', 'slow', 'held'];

export interface RestStandIn {
  url: string;
  /** Headers and JSON text of the last infer request, and its binary part's length. */
  last: { headers: IncomingMessage['headers']; json: string; binaryBytes: number } | undefined;
  slowCalls: number;
  /** Requests whose connection the client closed before an answer. */
  cancelled: number;
  maxUnanswered: number;
  /** When false, /v2/health/ready answers 400 as Triton does. */
  ready: boolean;
  release(): void;
  close(): Promise<void>;
}

// Numbers keep their source text, so INT64 data beyond 2^53 comes back as it was sent.
const parseExact = (text: string) =>
  JSON.parse(text, (_key, value, context?: { source?: string }) =>
    typeof value === 'number' && context?.source ? (JSON as unknown as { rawJSON(s: string): unknown }).rawJSON(context.source) : value);

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(text);
}

/** `tls`: serve HTTPS that requires a client certificate signed by `ca`. */
export async function startRestStandIn(options: { tls?: { ca: Buffer; cert: Buffer; key: Buffer } } = {}): Promise<RestStandIn> {
  const held: (() => void)[] = [];
  let released = false;
  let unanswered = 0;
  const state: RestStandIn = {
    url: '',
    last: undefined,
    slowCalls: 0,
    cancelled: 0,
    maxUnanswered: 0,
    ready: true,
    release() {
      released = true;
      for (const answer of held.splice(0)) answer();
    },
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };

  function infer(model: string, req: IncomingMessage, body: Buffer, res: ServerResponse): void {
    const headerLength = req.headers['inference-header-content-length'];
    const jsonEnd = headerLength === undefined ? body.length : Number(headerLength);
    const json = body.subarray(0, jsonEnd).toString('utf8');
    state.last = { headers: req.headers, json, binaryBytes: body.length - jsonEnd };
    const request = JSON.parse(json) as Json;
    const exact = parseExact(json) as Json;
    switch (model) {
      case 'fail':
        send(res, 400, { error: `model 'fail' refuses request ${JSON.stringify(request.id ?? '')}` }, { 'infermesh-grpc-status': 'FAILED_PRECONDITION' });
        return;
      case 'denied':
        send(res, 403, { error: 'this key may not call model \'denied\'' });
        return;
      case 'slow':
        state.slowCalls++;
        return;
    }
    let offset = jsonEnd;
    const binary: Buffer[] = [];
    const outputs = (request.inputs as Json[]).map((input, i) => {
      const size = input.parameters?.binary_data_size;
      const output: Json = { name: input.name, datatype: input.datatype, shape: input.shape };
      if (size === undefined) output.data = exact.inputs[i].data;
      else {
        binary.push(body.subarray(offset, offset + Number(size)));
        offset += Number(size);
        output.parameters = { binary_data_size: Number(size) };
      }
      return output;
    });
    const answer = () => {
      unanswered--;
      const head = Buffer.from(JSON.stringify({ model_name: model, model_version: '1', id: request.id ?? '', parameters: { served_by: 'stand-in' }, outputs }));
      if (binary.length === 0) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(head);
      } else {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(head.length) });
        res.end(Buffer.concat([head, ...binary]));
      }
    };
    unanswered++;
    state.maxUnanswered = Math.max(state.maxUnanswered, unanswered);
    if (model === 'held' && !released) held.push(answer);
    else setTimeout(answer, Math.floor(Math.random() * 3));
  }

  function route(req: IncomingMessage, body: Buffer, res: ServerResponse): void {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const model = /^\/v2\/models\/([^/]+)(?:\/versions\/([^/]+))?(\/[a-z]+)?$/.exec(path);
    if (req.method === 'GET' && path === '/v2/health/live') return send(res, 200, {});
    if (req.method === 'GET' && path === '/v2/health/ready') return state.ready ? send(res, 200, {}) : send(res, 400, { error: 'not ready' });
    if (req.method === 'GET' && path === '/v2') return send(res, 200, { name: 'rest-stand-in', version: '0.0.2', extensions: ['binary_tensor_data'] });
    if (req.method === 'GET' && path === '/v2/models/stats') {
      return send(res, 200, { model_stats: [{ name: 'echo', version: '1', last_inference: 5, inference_count: 2, execution_count: 1, inference_stats: { success: { count: 2, ns: 100 } }, batch_stats: [] }] });
    }
    if (req.method === 'POST' && path === '/v2/repository/index') return send(res, 200, MODELS.map((name) => ({ name, version: '1', state: 'READY', reason: '' })));
    const repo = /^\/v2\/repository\/models\/([^/]+)\/(load|unload)$/.exec(path);
    if (req.method === 'POST' && repo) {
      const name = decodeURIComponent(repo[1]);
      return MODELS.includes(name) ? send(res, 200, {}) : send(res, 404, { error: `model '${name}' is not served` }, { 'infermesh-grpc-status': 'NOT_FOUND' });
    }
    if (model) {
      const name = decodeURIComponent(model[1]);
      const action = model[3] ?? '';
      if (!MODELS.includes(name)) {
        return send(res, action === '/ready' ? 400 : 404, { error: `model '${name}' is not served` }, action === '/ready' ? {} : { 'infermesh-grpc-status': 'NOT_FOUND' });
      }
      if (req.method === 'GET' && action === '') {
        return send(res, 200, { name, versions: ['1'], platform: 'stand-in', inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 4] }], outputs: [{ name: 'y', datatype: 'FP32', shape: [-1, 4] }] });
      }
      if (req.method === 'GET' && action === '/ready') return send(res, 200, {});
      if (req.method === 'GET' && action === '/stats') return send(res, 200, { model_stats: [{ name, version: '1', inference_count: 7 }] });
      if (req.method === 'POST' && action === '/infer') return infer(name, req, body, res);
    }
    send(res, 404, { error: `no route ${req.method} ${path}` });
  }

  const listener: RequestListener = (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      try {
        route(req, Buffer.concat(chunks), res);
      } catch (error) {
        send(res, 500, { error: `stand-in: ${(error as Error).message}` });
      }
    });
    res.on('close', () => {
      if (!res.writableFinished) state.cancelled++;
    });
  };
  const server = options.tls
    ? createHttpsServer({ ...options.tls, requestCert: true, rejectUnauthorized: true }, listener)
    : createServer(listener);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.url = `${options.tls ? 'https' : 'http'}://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return state;
}
