/**
 * Coalescing at the router: concurrent requests for one model version wait in a
 * DynamicBatcher with the model's own dynamic_batching settings and go to a worker as one
 * message on its batch stream (WorkerChannel), so a batch of N costs one hop, not N. The request bytes are copied into
 * the batch as the clients sent them; each answer comes back as the worker encoded it.
 *
 * While a model's calls in flight are at their limit, requests keep queueing and the next
 * call carries all of them: under load batches grow by themselves, and a lone request
 * waits at most the model's max_queue_delay (0 for iris: never).
 */
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Context, type Link, type Span } from '@opentelemetry/api';
import { DynamicBatcher, packWithin, type BatcherOptions, type BatchResult } from '@infermesh/batching';
import { BATCHED_REQUEST_OVERHEAD_BYTES, encodeInferBatchRequest, type BatchedResponseParts, type ModelStatus__Output } from '@infermesh/contracts';
import { ServiceError, Status, deadlineExceeded, statusOf, unavailable } from '@infermesh/grpc';
import type { Logger } from '@infermesh/log';
import type { RoutingTable } from './routing-table.js';
import type { WorkerPool } from './worker-pool.js';
import { ChannelError } from './worker-channel.js';

/**
 * Calls in flight per model instance of a worker: two, so the next batch travels while the
 * current one computes, and the worker's own batcher can join them when it is busy.
 */
export const CALLS_PER_INSTANCE = 2;
/** Requests in flight per model instance for a model that does not batch. */
export const UNBATCHED_CALLS_PER_INSTANCE = 32;

const tracer = trace.getTracer('infermesh-router');

/**
 * A batch's place in the traces it serves: the child of its first request's span (so a lone
 * request's trace holds its batch), and linked to every request it carries.
 */
export function batchParent(batch: readonly PendingRequest[]): Context {
  const link = batch.length > 0 ? linksOf(batch.slice(0, 1))[0] : undefined;
  return link ? trace.setSpanContext(ROOT_CONTEXT, link.context) : ROOT_CONTEXT;
}

/** The span contexts of the requests a batch carries, as links. */
export function linksOf(batch: readonly PendingRequest[]): Link[] {
  const links: Link[] = [];
  for (const { traceparent } of batch) {
    const [, traceId, spanId, flags] = traceparent.split('-');
    if (traceId?.length === 32 && spanId?.length === 16) links.push({ context: { traceId, spanId, traceFlags: flags === '01' ? 1 : 0, isRemote: false } });
  }
  return links;
}

/** One client request waiting to go to a worker. */
export interface PendingRequest {
  /** The client's ModelInferRequest as it arrived. */
  bytes: Buffer;
  /** When the client's deadline passes (ms since the epoch). */
  deadlineMs: number;
  /** W3C traceparent of the request's span at the router ('' when not traced). */
  traceparent: string;
  /** process.hrtime.bigint() when it arrived, for the time it waits here. */
  arrivedNs: bigint;
  /** Ask the worker for an output sample: a shadow's answer is compared with this one (traffic-shadow.ts). */
  sampleOutputs?: boolean;
}

/**
 * A worker's answer to one request: the response bytes for the client, and what the
 * prediction record takes from it (timings, drift bins, predicted labels, the request id).
 */
export interface WorkerAnswer extends BatchedResponseParts {
  workerId: string;
}

export interface CoalescerDeps {
  table: RoutingTable;
  pool: WorkerPool;
  logger: Logger;
  /** Workers to try for one batch when workers are unreachable or vanish. */
  maxAttempts: number;
  /** The public message limit: a batch goes in messages of at most this much. */
  maxMessageBytes: number;
}

interface ModelQueue {
  /** What the settings were computed from: a heartbeat's status object, and the holders then. */
  status: ModelStatus__Output;
  holders: number;
  settings: string;
  batcher: DynamicBatcher<PendingRequest, WorkerAnswer>;
}

export class Coalescer {
  private readonly queues = new Map<string, ModelQueue>();

  constructor(private readonly deps: CoalescerDeps) {}

  /**
   * Queues one request for `status`'s model at `version` and resolves with the worker's
   * answer (whatever its status). Rejects when the request cannot reach any worker, waits
   * past its deadline, is cancelled, or the queue is full.
   */
  submit(status: ModelStatus__Output, version: string, request: PendingRequest, items: number, signal: AbortSignal): Promise<BatchResult<WorkerAnswer>> {
    const queue = this.queueFor(status, version);
    const maxBatch = status.maxBatchSize;
    // A request larger than the model takes is still sent (alone): the worker says why it is refused.
    const size = Math.max(1, maxBatch > 0 ? Math.min(items, maxBatch) : items);
    const deadlineNs = request.arrivedNs + BigInt(Math.max(0, Math.round((request.deadlineMs - Date.now()) * 1e6)));
    return queue.batcher.submit(request, size, { signal, deadline: deadlineNs });
  }

  /** Requests waiting at the router for a model version, not yet sent. */
  depth(model: string, version: string): number {
    return this.queues.get(key(model, version))?.batcher.depth ?? 0;
  }

  private queueFor(status: ModelStatus__Output, version: string): ModelQueue {
    const id = key(status.name, version);
    const holders = this.deps.table.holders(status.name, version).length;
    const queue = this.queues.get(id);
    if (queue && queue.status === status && queue.holders === holders) return queue;
    const options = batcherOptions(status, holders);
    const settings = JSON.stringify(options);
    if (queue && queue.settings === settings) {
      queue.status = status;
      queue.holders = holders;
      return queue;
    }
    // New settings (a worker joined or left, a model config changed): a new queue. The old
    // one sends what it holds and is then dropped with its last reference.
    const fresh: ModelQueue = { status, holders, settings, batcher: new DynamicBatcher(options, (batch) => this.send(status.name, version, batch)) };
    this.queues.set(id, fresh);
    return fresh;
  }

  /**
   * One batch to a worker, in messages of at most the message limit each (a batch of large
   * requests becomes several messages), answered in the batch's order.
   */
  private async send(model: string, version: string, batch: PendingRequest[]): Promise<WorkerAnswer[]> {
    const chunks = packWithin(batch, this.deps.maxMessageBytes, (request) => [request.bytes.length + BATCHED_REQUEST_OVERHEAD_BYTES]);
    if (chunks.length === 1) return this.sendMessage(model, version, chunks[0]);
    // Each message's requests keep that message's outcome: one that failed (its deadline
    // passed, its worker refused it) does not take the answers of the others with it.
    const outcomes = await Promise.allSettled(chunks.map((c) => this.sendMessage(model, version, c)));
    return outcomes.flatMap((outcome, i) => {
      if (outcome.status === 'fulfilled') return outcome.value;
      const status = statusOf(outcome.reason);
      if (status.internal) this.deps.logger.error({ err: outcome.reason, model }, 'batch message failed');
      return chunks[i].map(() => failedAnswer(status.code, status.details));
    });
  }

  /**
   * One message to a worker; again elsewhere when the worker is unreachable, drains, no
   * longer holds the model or vanishes mid-batch (inference has no side effects, so sending
   * again is safe), and again on the same worker, once, on a new stream when its stream
   * broke while the worker stays reachable.
   */
  private async sendMessage(model: string, version: string, batch: PendingRequest[]): Promise<WorkerAnswer[]> {
    const span = tracer.startSpan(`batch ${model}`, { kind: SpanKind.CLIENT, links: linksOf(batch), attributes: { 'infermesh.model': model, 'infermesh.version': version, 'infermesh.batch_requests': batch.length } }, batchParent(batch));
    try {
      return await this.sendMessageIn(span, model, version, batch);
    } catch (error) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: statusOf(error).details });
      throw error;
    } finally {
      span.end();
    }
  }

  private async sendMessageIn(span: Span, model: string, version: string, batch: PendingRequest[]): Promise<WorkerAnswer[]> {
    const { table, pool, logger } = this.deps;
    const excluded = new Set<string>();
    const reopened = new Set<string>();
    const latest = Math.max(...batch.map((r) => r.deadlineMs));
    let lastError: { details?: string; message?: string } | undefined;
    for (let attempt = 0; attempt < this.deps.maxAttempts; attempt++) {
      const worker = table.pick(model, version, (id) => pool.inFlight(id), excluded);
      if (!worker) break;
      span.setAttribute('infermesh.worker_id', worker.id);
      const call = pool.begin(worker.id, worker.address, batch.length);
      try {
        const now = Date.now();
        const nowNs = process.hrtime.bigint();
        const items = batch.map((r) => ({
          request: r.bytes,
          queuedUs: Math.round(Number(nowNs - r.arrivedNs) / 1000),
          timeoutUs: Math.max(1, Math.round((r.deadlineMs - now) * 1000)),
          traceparent: r.traceparent,
          sampleOutputs: r.sampleOutputs,
        }));
        const reply = await pool.channel(worker.id, worker.address).send((batchId) => encodeInferBatchRequest(model, version, items, batchId), latest, call.signal);
        if (reply.statusCode !== Status.OK) throw new ServiceError(reply.statusCode, reply.errorMessage);
        if (reply.answers.length !== batch.length) throw new Error(`worker ${worker.id} answered ${reply.answers.length} of ${batch.length} requests`);
        return reply.answers.map((answer) => ({ ...answer, workerId: worker.id }));
      } catch (error) {
        const next = this.nextStep(error, call.vanished, reopened.has(worker.id));
        if (next === 'give up' || Date.now() >= latest) {
          if (call.vanished) throw deadlineExceeded(`worker ${worker.id} vanished while it held the request, and the request's deadline has passed`);
          throw error;
        }
        lastError = error as { details?: string; message?: string };
        logger.warn({ worker_id: worker.id, model, next, details: call.vanished ? 'vanished' : lastError.details ?? lastError.message }, 'batch not answered; sending it again');
        if (next === 'same worker') reopened.add(worker.id);
        else excluded.add(worker.id);
        // Gone until its next heartbeat says otherwise. A draining worker keeps answering what it holds.
        if (next === 'unreachable') table.remove(worker.id, 'unreachable');
        if (next === 'draining') table.remove(worker.id, 'draining');
      } finally {
        call.release();
      }
    }
    if (lastError) throw unavailable(`no worker could serve model '${model}': ${lastError.details ?? lastError.message}`);
    throw unavailable(`no worker currently serves model '${model}' version '${version}'`);
  }

  /** What to do after a message failed: which worker next, and whether it leaves the table. */
  private nextStep(error: unknown, vanished: boolean, reopenedBefore: boolean): 'give up' | 'same worker' | 'another worker' | 'unreachable' | 'draining' {
    if (vanished) return 'another worker';
    if (error instanceof ChannelError) {
      if (error.failure === 'deadline') return 'give up';
      if (error.failure === 'ended') return 'draining';
      if (error.unreachable) return 'unreachable';
      // A reset or a message the worker could not take: a new stream, once, then elsewhere.
      return reopenedBefore ? 'another worker' : 'same worker';
    }
    if (error instanceof ServiceError) {
      // Refused as a whole: the worker is shutting down, or no longer holds this version.
      if (error.code === Status.UNAVAILABLE) return 'draining';
      if (error.code === Status.NOT_FOUND) return 'another worker';
    }
    return 'give up';
  }
}

function failedAnswer(statusCode: number, errorMessage: string): WorkerAnswer {
  return {
    response: Buffer.alloc(0), statusCode, errorMessage, preprocessUs: 0, queueUs: 0, computeUs: 0, batchSize: 0, driftBins: Buffer.alloc(0), profileId: '', predictedLabels: [], requestId: '', outputSample: [], workerId: '',
  };
}

function key(model: string, version: string): string {
  return `${model}\u0000${version}`;
}

/**
 * The model's own dynamic_batching, with calls in flight bounded by its instances on the
 * workers that hold it. A model without dynamic batching is not held back: each request
 * goes on at once, alone.
 */
export function batcherOptions(status: ModelStatus__Output, holders: number): BatcherOptions {
  const batching = status.dynamicBatching;
  if (!batching || status.maxBatchSize === 0) {
    // Each request alone, at once, but not without bound: enough in flight to keep each
    // instance busy with a worker-side queue, the rest waits here (and may be refused).
    return { maxBatchSize: 0, preferredBatchSizes: [], maxQueueDelayUs: 0, maxQueueSize: 1024, instances: Math.max(1, holders) * Math.max(1, status.instances) * UNBATCHED_CALLS_PER_INSTANCE, dynamic: false };
  }
  return {
    maxBatchSize: status.maxBatchSize,
    preferredBatchSizes: batching.preferredBatchSize,
    maxQueueDelayUs: Number(batching.maxQueueDelayUs),
    maxQueueSize: batching.maxQueueSize || 1024,
    instances: Math.max(1, holders) * Math.max(1, status.instances) * CALLS_PER_INSTANCE,
    dynamic: true,
  };
}
