/**
 * Shadow traffic: a copy of each request of a model (the same bytes) goes to each of its
 * shadow versions through the same Coalescer and worker path as client requests, and the
 * shadow's answer is compared with the client's and recorded, never returned.
 *
 * It must never slow the client: copies are submitted after the client's request is queued
 * (on the next turn of the event loop), with their own deadline and abort signal (a client
 * that cancels does not cancel them, a shadow that hangs does not hold the client), and at
 * most `maxInFlight` copies are in flight in this router: beyond that copies are dropped,
 * and counted, rather than queued. A shadow's queue is its own (the Coalescer queues per
 * model version), so it never delays the client's batch.
 *
 * Agreement: both answers OK, and the worker's predicted labels (one per input, classifiers
 * only) the same, in order; for a model with no classifier output, the output samples the
 * workers sent (asked for on both requests) the same within a tolerance (shadow-agreement.ts).
 * An error on either side, or nothing to line up, is recorded as not compared: agreement
 * unknown. The tensors are never decoded here.
 */
import type { InferRequestHeader, ModelStatus__Output, PredictionRecord } from '@infermesh/contracts';
import { Status, statusOf } from '@infermesh/grpc';
import type { Logger } from '@infermesh/log';
import type { Coalescer, WorkerAnswer } from './coalescer.js';
import type { RoutingTable } from './routing-table.js';
import { shadowAgreement } from './shadow-agreement.js';
import { ToldFieldsReader } from './worker-told.js';

/** Shadow copies in flight in one router, at most, unless configured. */
export const SHADOW_MAX_IN_FLIGHT = 64;
/** A dropped copy is logged the first time, then once per this many. */
const LOG_EVERY = 1000;

export interface ShadowTrafficDeps {
  coalescer: Pick<Coalescer, 'submit'>;
  table: Pick<RoutingTable, 'model'>;
  /** Where the shadow's PredictionRecord goes (the router's PredictionPublisher). */
  publish: (record: PredictionRecord) => void;
  logger: Logger;
  /** Each copy's own deadline, from when it is submitted. */
  timeoutMs: number;
  maxInFlight?: number;
}

/** The client's request, as the shadows need it. */
export interface ShadowedRequest {
  header: InferRequestHeader;
  /** The version that answers the client. */
  version: string;
  bytes: Buffer;
  items: number;
  traceparent: string;
  clientId: string;
}

/** What the client's request became: its answer, or undefined when it got none. Called once. */
export type SettleClient = (answer: WorkerAnswer | undefined) => void;

export class ShadowTraffic {
  private inFlight = 0;
  private droppedCount = 0;
  private readonly told: ToldFieldsReader;
  private readonly maxInFlight: number;

  constructor(private readonly deps: ShadowTrafficDeps) {
    this.told = new ToldFieldsReader(deps.logger);
    this.maxInFlight = deps.maxInFlight ?? SHADOW_MAX_IN_FLIGHT;
  }

  /** Copies dropped because `maxInFlight` were in flight. */
  get dropped(): number {
    return this.droppedCount;
  }

  get copiesInFlight(): number {
    return this.inFlight;
  }

  /**
   * Sends a copy of `request` to each of `shadows` that is served and not the client's own
   * version; returns what to call with the client's answer once it has one.
   */
  copy(request: ShadowedRequest, shadows: readonly string[]): SettleClient {
    let settle: SettleClient = () => undefined;
    const client = new Promise<WorkerAnswer | undefined>((resolve) => (settle = resolve));
    for (const version of shadows) {
      if (version === request.version) continue;
      const status = this.deps.table.model(request.header.modelName, version);
      if (!status) continue;
      if (this.inFlight >= this.maxInFlight) {
        if (this.droppedCount++ % LOG_EVERY === 0) {
          this.deps.logger.warn({ model: status.name, version, in_flight: this.inFlight, limit: this.maxInFlight, dropped_total: this.droppedCount }, 'shadow copy dropped: too many in flight');
        }
        continue;
      }
      this.inFlight += 1;
      // After the client's request is queued: submitting encodes and may send a batch at once.
      setImmediate(() => {
        void this.run(status, version, request, client).finally(() => (this.inFlight -= 1));
      });
    }
    return (answer) => settle(answer);
  }

  private async run(status: ModelStatus__Output, version: string, request: ShadowedRequest, client: Promise<WorkerAnswer | undefined>): Promise<void> {
    const startedNs = process.hrtime.bigint();
    const deadlineMs = Date.now() + this.deps.timeoutMs;
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), this.deps.timeoutMs);
    let answer: WorkerAnswer | undefined;
    let code: number = Status.OK;
    let message = '';
    try {
      const result = await this.deps.coalescer.submit(status, version, { bytes: request.bytes, deadlineMs, traceparent: request.traceparent, arrivedNs: startedNs, sampleOutputs: true }, request.items, abort.signal);
      answer = result.output;
      code = answer.statusCode;
      message = answer.errorMessage;
    } catch (error) {
      const failure = statusOf(error);
      code = failure.code;
      message = failure.details;
    } finally {
      clearTimeout(timer);
    }
    const latencyUs = Math.round(Number(process.hrtime.bigint() - startedNs) / 1000);
    const served = await client;
    const shadowTold = this.told.read(answer, request.items);
    const agreement = code === Status.OK && served?.statusCode === Status.OK ? shadowAgreement(this.told.read(served, request.items), shadowTold) : { compared: false, agreed: false };
    this.deps.publish({
      requestId: request.header.id,
      model: status.name,
      version,
      workerId: answer?.workerId ?? '',
      statusCode: code,
      errorMessage: message.slice(0, 1024),
      latencyUs: String(latencyUs),
      preprocessUs: String(answer?.preprocessUs ?? 0),
      queueUs: String(answer?.queueUs ?? 0),
      computeUs: String(answer?.computeUs ?? 0),
      batchSize: answer?.batchSize ?? 0,
      traceId: request.traceparent.slice(3, 35),
      timestampMs: String(Date.now()),
      items: request.items,
      traceparent: request.traceparent,
      clientId: request.clientId,
      predictedLabels: shadowTold.predictedLabels,
      shadowOfVersion: request.version,
      shadowCompared: agreement.compared,
      shadowAgreed: agreement.agreed,
    });
  }
}
