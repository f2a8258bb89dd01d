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
import type * as grpc from '@grpc/grpc-js';
import { DynamicBatcher, type BatcherOptions, type BatchResult } from '@infermesh/batching';
import { encodeInferBatchRequest, type BatchedResponseParts, type ModelStatus__Output } from '@infermesh/contracts';
import { ServiceError, Status, unavailable } from '@infermesh/grpc';
import type { Logger } from '@infermesh/log';
import type { RoutingTable } from './routing-table.js';
import type { WorkerPool } from './worker-pool.js';

/**
 * Calls in flight per model instance of a worker: two, so the next batch travels while the
 * current one computes, and the worker's own batcher can join them when it is busy.
 */
export const CALLS_PER_INSTANCE = 2;

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
}

/** A worker's answer to one request. */
export interface WorkerAnswer extends BatchedResponseParts {
  workerId: string;
}

export interface CoalescerDeps {
  table: RoutingTable;
  pool: WorkerPool;
  logger: Logger;
  /** Workers to try for one batch when workers are unreachable or vanish. */
  maxAttempts: number;
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
   * One batch to a worker, again on another worker when one is unreachable, drains or
   * vanishes mid-batch: inference has no side effects, so sending the batch again is safe.
   */
  private async send(model: string, version: string, batch: PendingRequest[]): Promise<WorkerAnswer[]> {
    const { table, pool, logger } = this.deps;
    const tried = new Set<string>();
    let lastError: Partial<grpc.ServiceError> | undefined;
    for (let attempt = 0; attempt < this.deps.maxAttempts; attempt++) {
      const worker = table.pick(model, version, (id) => pool.inFlight(id), tried);
      if (!worker) break;
      tried.add(worker.id);
      const call = pool.begin(worker.id, worker.address, batch.length);
      try {
        const now = Date.now();
        const nowNs = process.hrtime.bigint();
        const deadline = Math.max(...batch.map((r) => r.deadlineMs));
        const items = batch.map((r) => ({
          request: r.bytes,
          queuedUs: Math.round(Number(nowNs - r.arrivedNs) / 1000),
          timeoutUs: Math.max(1, Math.round((r.deadlineMs - now) * 1000)),
          traceparent: r.traceparent,
        }));
        const reply = await pool.channel(worker.id, worker.address).send((batchId) => encodeInferBatchRequest(model, version, items, batchId), deadline, call.signal);
        // Refused as a whole (draining, model gone): UNAVAILABLE is tried elsewhere below.
        if (reply.statusCode !== Status.OK) throw Object.assign(new ServiceError(reply.statusCode, reply.errorMessage), { details: reply.errorMessage });
        if (reply.answers.length !== batch.length) throw new Error(`worker ${worker.id} answered ${reply.answers.length} of ${batch.length} requests`);
        return reply.answers.map((answer) => ({ ...answer, workerId: worker.id }));
      } catch (error) {
        const failure = error as Partial<grpc.ServiceError>;
        const retry = call.vanished || failure.code === Status.UNAVAILABLE;
        if (!retry || Date.now() >= Math.max(...batch.map((r) => r.deadlineMs))) throw error;
        lastError = failure;
        logger.warn({ worker_id: worker.id, model, details: call.vanished ? 'vanished' : failure.details }, 'worker unavailable; trying another');
        // A worker that refuses connections or drains is gone until its next heartbeat says otherwise.
        if (!call.vanished) table.remove(worker.id, 'unavailable');
      } finally {
        call.release();
      }
    }
    if (lastError) throw unavailable(`no worker could serve model '${model}': ${lastError.details ?? lastError.message}`);
    throw unavailable(`no worker currently serves model '${model}' version '${version}'`);
  }
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
    return { maxBatchSize: 0, preferredBatchSizes: [], maxQueueDelayUs: 0, maxQueueSize: Number.MAX_SAFE_INTEGER, instances: Number.MAX_SAFE_INTEGER, dynamic: false };
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
