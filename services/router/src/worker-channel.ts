/**
 * The router's stream to one worker (infermesh.v1.Worker/InferBatches): opened on first use
 * and kept open, each batch one message, answers matched by batch id. A message on an
 * open HTTP/2 stream costs about half the round trip and the CPU of a unary call
 * (docs/performance.md), and a router sends one per batch.
 *
 * When the stream breaks (the worker died, restarted or drained) every batch still on it
 * fails UNAVAILABLE, which the coalescer retries on another worker; the next batch opens a
 * new stream. A batch whose deadline passes fails DEADLINE_EXCEEDED.
 */
import * as grpc from '@grpc/grpc-js';
import { readInferBatchResponse, type InferBatchResponseParts } from '@infermesh/contracts';
import { atDeadline, Status, type DeadlineTimer } from '@infermesh/grpc';

const INFER_BATCHES = '/infermesh.v1.Worker/InferBatches';
const identity = (bytes: Buffer) => bytes;

/** Shaped as grpc-js's call errors, so the status table and the retry logic read it the same way. */
export interface ChannelError extends Error {
  code: number;
  details: string;
  metadata: grpc.Metadata;
}

function channelError(code: number, details: string): ChannelError {
  return Object.assign(new Error(`${code} ${Status[code]}: ${details}`), { code, details, metadata: new grpc.Metadata() });
}

interface InFlight {
  /** The stream the batch went out on: a broken stream fails only its own batches. */
  stream: grpc.ClientDuplexStream<Buffer, Buffer>;
  resolve(answer: InferBatchResponseParts): void;
  reject(error: unknown): void;
}

export class WorkerChannel {
  private stream: grpc.ClientDuplexStream<Buffer, Buffer> | undefined;
  private readonly inFlight = new Map<number, InFlight>();
  private nextId = 1;

  constructor(
    private readonly client: grpc.Client,
    private readonly describe: string,
  ) {}

  /** Batches sent and not yet answered. */
  get size(): number {
    return this.inFlight.size;
  }

  /**
   * Sends one batch (`encode` writes it with the batch id it is given) and resolves with the
   * worker's answer, whether the batch ran or was refused as a whole.
   */
  send(encode: (batchId: number) => Buffer, deadlineMs: number, signal: AbortSignal): Promise<InferBatchResponseParts> {
    return new Promise((resolve, reject) => {
      if (signal.aborted) return reject(signal.reason);
      const id = this.nextId++;
      let timer: DeadlineTimer | undefined;
      const onAbort = () => settle(() => reject(signal.reason));
      const settle = (then: () => void) => {
        if (!this.inFlight.delete(id)) return;
        timer?.clear();
        signal.removeEventListener('abort', onAbort);
        then();
      };
      const stream = this.open();
      this.inFlight.set(id, {
        stream,
        resolve: (answer) => settle(() => resolve(answer)),
        reject: (error) => settle(() => reject(error)),
      });
      timer = atDeadline(deadlineMs, () => settle(() => reject(channelError(Status.DEADLINE_EXCEEDED, `no answer from ${this.describe} before the deadline`))));
      signal.addEventListener('abort', onAbort, { once: true });
      stream.write(encode(id));
    });
  }

  /** Ends the stream; batches still on it fail UNAVAILABLE. */
  close(): void {
    const stream = this.stream;
    this.stream = undefined;
    const error = channelError(Status.UNAVAILABLE, `${this.describe} closed`);
    for (const flight of [...this.inFlight.values()]) flight.reject(error);
    stream?.cancel();
  }

  private open(): grpc.ClientDuplexStream<Buffer, Buffer> {
    if (this.stream) return this.stream;
    const stream = this.client.makeBidiStreamRequest<Buffer, Buffer>(INFER_BATCHES, identity, identity, new grpc.Metadata());
    this.stream = stream;
    stream.on('data', (bytes: Buffer) => {
      let answer: InferBatchResponseParts;
      try {
        answer = readInferBatchResponse(bytes);
      } catch (error) {
        this.failAll(stream, channelError(Status.UNAVAILABLE, `${this.describe} sent an unreadable answer: ${(error as Error).message}`));
        stream.cancel();
        return;
      }
      this.inFlight.get(answer.batchId)?.resolve(answer);
    });
    const broken = (details: string) => this.failAll(stream, channelError(Status.UNAVAILABLE, `${this.describe}: ${details}`));
    stream.on('error', (error: grpc.ServiceError) => broken(error.details || error.message));
    // A worker that drains answers what it holds, then ends the stream.
    stream.on('end', () => broken('the stream ended'));
    return stream;
  }

  private failAll(stream: grpc.ClientDuplexStream<Buffer, Buffer>, error: ChannelError): void {
    if (this.stream === stream) this.stream = undefined;
    for (const flight of [...this.inFlight.values()]) if (flight.stream === stream) flight.reject(error);
  }
}
