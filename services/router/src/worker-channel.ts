/**
 * The router's stream to one worker (infermesh.v1.Worker/InferBatches): opened on first use
 * and kept open, each batch one message, answers matched by batch id. A message on an
 * open HTTP/2 stream costs about half the round trip and the CPU of a unary call
 * (docs/performance.md), and a router sends one per batch.
 *
 * A batch fails with a ChannelError that says how: the stream broke (connection refused or
 * reset, a message the worker could not take), the worker ended the stream (it drains), the
 * batch's deadline passed, or the channel was closed. The coalescer decides from that
 * whether to try the same worker again on a new stream, another worker, or neither. A
 * broken or ended stream fails only the batches that went out on it; the next batch opens a
 * new one.
 */
import * as grpc from '@grpc/grpc-js';
import { readInferBatchResponse, type InferBatchResponseParts } from '@infermesh/contracts';
import { atDeadline, Status, type DeadlineTimer } from '@infermesh/grpc';

const INFER_BATCHES = '/infermesh.v1.Worker/InferBatches';
const identity = (bytes: Buffer) => bytes;

export type ChannelFailure = 'broken' | 'ended' | 'deadline' | 'closed';

/** Shaped as grpc-js's call errors, so the status table reads it the same way; `failure` says what happened. */
export class ChannelError extends Error {
  override readonly name = 'ChannelError';
  readonly metadata = new grpc.Metadata();

  constructor(
    readonly failure: ChannelFailure,
    readonly code: number,
    readonly details: string,
  ) {
    super(`${code} ${Status[code]}: ${details}`);
  }

  /** The worker cannot be reached at all (nothing listens at its address). */
  get unreachable(): boolean {
    return this.failure === 'broken' && /ECONNREFUSED|No connection established|EHOSTUNREACH|ENOTFOUND|Failed to connect/i.test(this.details);
  }
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
      if (deadlineMs <= Date.now()) return reject(new ChannelError('deadline', Status.DEADLINE_EXCEEDED, `the deadline passed before the batch went to ${this.describe}`));
      let body: Buffer;
      const id = this.nextId++;
      try {
        body = encode(id);
      } catch (error) {
        return reject(error);
      }
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
      timer = atDeadline(deadlineMs, () => settle(() => reject(new ChannelError('deadline', Status.DEADLINE_EXCEEDED, `no answer from ${this.describe} before the deadline`))));
      signal.addEventListener('abort', onAbort, { once: true });
      stream.write(body);
    });
  }

  /** Ends the stream; batches still on it fail (failure 'closed', UNAVAILABLE). */
  close(): void {
    const stream = this.stream;
    this.stream = undefined;
    const error = new ChannelError('closed', Status.UNAVAILABLE, `${this.describe} closed`);
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
        this.fail(stream, new ChannelError('broken', Status.UNAVAILABLE, `${this.describe} sent an unreadable answer: ${(error as Error).message}`));
        stream.cancel();
        return;
      }
      const flight = this.inFlight.get(answer.batchId);
      if (flight?.stream === stream) flight.resolve(answer);
    });
    stream.on('error', (error: grpc.ServiceError) => this.fail(stream, new ChannelError('broken', Status.UNAVAILABLE, `${this.describe}: ${error.details || error.message}`)));
    // A worker that drains answers what it holds, then ends the stream.
    stream.on('end', () => this.fail(stream, new ChannelError('ended', Status.UNAVAILABLE, `${this.describe} ended the stream`)));
    return stream;
  }

  private fail(stream: grpc.ClientDuplexStream<Buffer, Buffer>, error: ChannelError): void {
    if (this.stream === stream) this.stream = undefined;
    for (const flight of [...this.inFlight.values()]) if (flight.stream === stream) flight.reject(error);
  }
}
