/**
 * GRPC_MAX_MESSAGE_BYTES between the worker and the preprocessor, with both services real
 * and the real text-direction model: the images of one batch message go to the
 * preprocessor in as many calls as the limit needs (the pixels coming back are larger than
 * the PNGs going out), and a single request too large for one call is refused, naming the
 * limit, while the rest of its batch is answered.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { connectBus, type Bus } from '@infermesh/bus';
import { createLogger } from '@infermesh/log';
import { inferenceService, workerService, type InferBatchRequest, type InferBatchResponse__Output, type ModelInferRequest } from '@infermesh/contracts';
import { createPreprocessor, preprocessorConfig, type Preprocessor } from '@infermesh/preprocessor';
import { createWorker, workerConfig, type Worker } from '@infermesh/worker';
import { encodeBytesElements } from '@infermesh/tensor';
import { ROOT, startNatsServer, type NatsServer } from '@infermesh/testing';

// 256 KiB: a text-direction frame is 48 × 192 × 3 = 27,648 bytes, so 4 images answer
// 110 KB and three such requests (332 KB) need more than one preprocessor call.
const LIMIT = 256 * 1024;
const logger = createLogger('test', { level: 'silent' });
type Codec<Req, Res> = grpc.MethodDefinition<Req, Res>;
const batchCodec = workerService().InferBatches as unknown as Codec<InferBatchRequest, InferBatchResponse__Output>;
const requestCodec = inferenceService().ModelInfer as unknown as Codec<ModelInferRequest, unknown>;

let nats: NatsServer;
let bus: Bus;
let preprocessor: Preprocessor;
let worker: Worker;
let raw: grpc.Client;
let png: Buffer;

beforeAll(async () => {
  nats = await startNatsServer();
  bus = await connectBus({ url: nats.url, name: 'limits test', prefix: 'limits', logger });
  const env = { NATS_URL: nats.url, NATS_SUBJECT_PREFIX: 'limits', GRPC_MAX_MESSAGE_BYTES: String(LIMIT) };
  preprocessor = createPreprocessor({ config: preprocessorConfig({ ...env, PREPROCESSOR_HOST: '127.0.0.1', PREPROCESSOR_PORT: '0' }), logger });
  const port = await preprocessor.start();
  worker = await createWorker({
    config: workerConfig({
      ...env, MODEL_REPOSITORY: join(ROOT, 'models'), WORKER_MODELS: 'text-direction', WORKER_ID: 'limits-worker',
      WORKER_HOST: '127.0.0.1', WORKER_PORT: '0', WORKER_INTRA_OP_THREADS: '1', PREPROCESSOR_ADDRESS: `127.0.0.1:${port}`,
    }),
    logger,
    bus,
  });
  raw = new grpc.Client(await worker.start(), grpc.credentials.createInsecure());
  png = await readFile(join(ROOT, 'models/text-direction/samples/upright.png'));
}, 60_000);

afterAll(async () => {
  raw?.close();
  await worker?.stop();
  await preprocessor?.stop();
  await bus?.drain();
  await nats?.stop();
});

function imageRequest(id: string, images: number): Buffer {
  return requestCodec.requestSerialize({
    modelName: 'text-direction', id,
    inputs: [{ name: 'image', datatype: 'BYTES', shape: [String(images)] }],
    rawInputContents: [encodeBytesElements(Array.from({ length: images }, () => png))],
  });
}

/** One InferBatches message, as a router sends it, and its answer. */
function inferBatch(requests: Buffer[]): Promise<InferBatchResponse__Output> {
  return new Promise((resolve, reject) => {
    const stream = raw.makeBidiStreamRequest(batchCodec.path, batchCodec.requestSerialize, batchCodec.responseDeserialize);
    stream.on('data', (answer: InferBatchResponse__Output) => {
      resolve(answer);
      stream.end();
    });
    stream.on('error', reject);
    stream.write({ modelName: 'text-direction', modelVersion: '1', batchId: '1', requests: requests.map((request) => ({ request, timeoutUs: '20000000' })) });
  });
}

describe('a batch whose pixels pass the message limit', () => {
  it('is preprocessed in several calls and every request is answered', async () => {
    expect(png.length * 12).toBeLessThan(LIMIT / 2);
    const answer = await inferBatch(['a', 'b', 'c'].map((id) => imageRequest(id, 4)));
    expect(answer.statusCode).toBe(0);
    expect(answer.responses.map((r) => [r.statusCode, r.errorMessage])).toEqual([[0, ''], [0, ''], [0, '']]);
    expect(answer.responses.map((r) => r.response?.id)).toEqual(['a', 'b', 'c']);
  });

  it('refuses only the request whose own pixels cannot fit one call, naming the limit', async () => {
    const answer = await inferBatch([imageRequest('small', 1), imageRequest('huge', 12)]);
    expect(answer.responses[0].statusCode).toBe(0);
    expect(answer.responses[1].statusCode).toBe(grpc.status.INVALID_ARGUMENT);
    expect(answer.responses[1].errorMessage).toMatch(new RegExp(`input 'image': the request's pixels \\(\\d+ bytes\\) exceed the ${LIMIT}-byte message limit \\(GRPC_MAX_MESSAGE_BYTES\\)`));
  });
});
