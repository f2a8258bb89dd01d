/**
 * Checks workers directly with gRPC health (grpc.health.v1.Health/Check, which every
 * service serves), through the worker pool's client for the worker, so a check is made
 * with the credentials of the router's calls to that worker.
 *
 * - Admission: a heartbeat is a claim anyone on NATS can make. A worker id heard of for
 *   the first time (or at a new address) becomes routable only once a check to the
 *   address it announced succeeds, so a heartbeat pointing at nothing, or at a server
 *   that cannot prove it is that worker, gets no traffic.
 * - NATS outage: heartbeats cannot arrive, so their age says nothing; the workers already
 *   known are checked every interval instead, and one that fails its check (or says
 *   NOT_SERVING) leaves the table. New workers wait for NATS.
 * - Filling: after a start the table is filled once one heartbeat period has passed and
 *   the workers heard of meanwhile have answered their checks.
 * - Draining claims: a heartbeat saying a known worker drains is believed once the worker
 *   itself, checked at the address the router knows, no longer says SERVING (a worker turns
 *   NOT_SERVING before it announces its drain). A claim the worker denies is refused and
 *   logged: with one NATS user for all workers, any worker could send one for another.
 */
import * as grpc from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import type { WorkerHeartbeat__Output } from '@infermesh/contracts';
import type { Logger } from '@infermesh/log';
import type { RoutingTable } from './routing-table.js';
import type { WorkerPool } from './worker-pool.js';

/** Checks in progress for ids not yet admitted, at most: heartbeats come again, so one beyond this waits for a later one. */
const MAX_ADMISSIONS_IN_PROGRESS = 64;
/** Refused ids remembered (each logged once while remembered); the oldest are forgotten first. */
const MAX_REFUSED_REMEMBERED = 1024;
/** Heartbeat fields quoted in logs at most this long: anyone on NATS chooses them. */
const MAX_LOGGED = 128;
/** A peer's status message kept at most this long. */
const MAX_REASON = 200;

const bounded = (text: string, most: number) => (text.length <= most ? text : `${text.slice(0, most)}…`);

/** host:port as a worker announces it (a name, IPv4 or [IPv6]); anything else is refused unchecked. */
const ADDRESS = /^(?:[A-Za-z0-9._-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\]):\d{1,5}$/;

/**
 * One health check of the server behind `client`: undefined when it says SERVING,
 * otherwise why not (its status, or the call's error).
 */
export function checkHealth(client: grpc.Client, timeoutMs: number): Promise<string | undefined> {
  const check = healthService.Check as grpc.MethodDefinition<{ service: string }, { status: string }>;
  return new Promise((resolve) => {
    client.makeUnaryRequest(check.path, check.requestSerialize, check.responseDeserialize, { service: '' }, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (error, response) => {
      if (error) resolve(bounded(`${grpc.status[error.code] ?? error.code}: ${error.details}`, MAX_REASON));
      else resolve(response?.status === 'SERVING' ? undefined : `health says ${response?.status ?? 'nothing'}`);
    });
  });
}

export interface WorkerProbeOptions {
  table: RoutingTable;
  pool: WorkerPool;
  logger: Logger;
  /** Deadline of one check. */
  checkTimeoutMs: number;
  /** While NATS is down, each known worker is checked this often. */
  outageCheckMs: number;
  /** A refused worker id at the same address is checked again no sooner than this. */
  retryRefusedMs: number;
  /** Filled at the latest this long after the probe starts (one heartbeat period plus a margin), once checks in progress have answered. */
  fillMs: number;
}

interface Admission {
  address: string;
  /** The newest heartbeat from the worker while its check runs: what enters the table. */
  latest: WorkerHeartbeat__Output;
  done: Promise<void>;
}

export class WorkerProbe {
  private readonly admissions = new Map<string, Admission>();
  private readonly refused = new Map<string, { address: string; retryAt: number }>();
  private readonly outageChecks = new Set<string>();
  /** Workers whose draining claim is being checked, and those whose false claims were logged (bounded). */
  private readonly drainChecks = new Map<string, Promise<void>>();
  private readonly deniedDrains = new Set<string>();
  private outageTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private heardAgain!: () => void;
  private readonly repeated = new Promise<void>((resolve) => (this.heardAgain = resolve));
  private fillTimer: NodeJS.Timeout | undefined;
  /** Resolves once the table is filled (see the file's comment). */
  readonly filled: Promise<void>;

  constructor(private readonly options: WorkerProbeOptions) {
    const deadline = new Promise<void>((resolve) => (this.fillTimer = setTimeout(resolve, options.fillMs)));
    // A known worker heard from again means a whole heartbeat period has passed since the
    // first heartbeat arrived: every live worker has announced itself by then.
    this.filled = Promise.race([deadline, this.repeated]).then(() => this.settled()).then(() => {
      clearTimeout(this.fillTimer);
      if (!this.closed) options.table.markFilled();
    });
  }

  /** Takes a heartbeat: updates a worker already admitted at that address, or checks it first. */
  heartbeat(heartbeat: WorkerHeartbeat__Output): void {
    const { table } = this.options;
    const id = heartbeat.workerId;
    if (heartbeat.draining) {
      // A worker being admitted is not told apart here: a draining worker says NOT_SERVING,
      // so its own check refuses it, and a forged claim cannot keep a good one out.
      if (table.get(id)) this.checkDrain(heartbeat);
      return;
    }
    const known = table.get(id);
    if (known && known.address === heartbeat.address) {
      table.update(heartbeat);
      this.heardAgain();
      return;
    }
    const admission = this.admissions.get(id);
    if (admission) {
      if (admission.address === heartbeat.address) admission.latest = heartbeat;
      return;
    }
    const refused = this.refused.get(id);
    if (refused && refused.address === heartbeat.address && Date.now() < refused.retryAt) return;
    if (this.admissions.size >= MAX_ADMISSIONS_IN_PROGRESS) return;
    if (!ADDRESS.test(heartbeat.address)) {
      this.refuse(id, heartbeat.address, 'the announced address is not host:port');
      return;
    }
    this.admit(heartbeat);
  }

  /** One health check of the worker at `address`; never rejects (a client that cannot be made is a failed check). */
  private health(id: string, address: string): Promise<string | undefined> {
    return this.options.pool.withClient(id, address, (client) => checkHealth(client, this.options.checkTimeoutMs)).catch(
      (error: unknown) => bounded(`no client for the address: ${(error as Error)?.message ?? String(error)}`, MAX_REASON),
    );
  }

  /** NATS is down: check each known worker every interval instead of expiring it by heartbeat age. */
  startOutageChecks(): void {
    if (this.outageTimer || this.closed) return;
    this.options.table.suspendExpiry();
    this.outageTimer = setInterval(() => this.checkKnown(), this.options.outageCheckMs);
    this.checkKnown();
  }

  /** NATS is back: heartbeats expire workers again (each known one gets a stale period from now). */
  stopOutageChecks(): void {
    if (!this.outageTimer) return;
    clearInterval(this.outageTimer);
    this.outageTimer = undefined;
    this.options.table.resumeExpiry();
  }

  /** Resolves once the admission (and draining claim) checks in progress now have answered. */
  async settled(): Promise<void> {
    await Promise.all([...[...this.admissions.values()].map((a) => a.done), ...this.drainChecks.values()]);
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.fillTimer);
    if (this.outageTimer) clearInterval(this.outageTimer);
    this.outageTimer = undefined;
  }

  private admit(heartbeat: WorkerHeartbeat__Output): void {
    const { table } = this.options;
    const id = heartbeat.workerId;
    const address = heartbeat.address;
    const admission: Admission = { address, latest: heartbeat, done: Promise.resolve() };
    admission.done = this.health(id, address).then((reason) => {
      this.admissions.delete(id);
      if (this.closed) return;
      if (reason === undefined) {
        this.refused.delete(id);
        table.update(admission.latest);
      } else this.refuse(id, address, reason);
    });
    this.admissions.set(id, admission);
  }

  /** Believes a draining claim once the worker, at the address the router knows, stops saying SERVING. */
  private checkDrain(heartbeat: WorkerHeartbeat__Output): void {
    const { table, logger } = this.options;
    const id = heartbeat.workerId;
    const known = table.get(id);
    if (!known || this.drainChecks.has(id)) return;
    const check = this.health(id, known.address).then((reason) => {
      this.drainChecks.delete(id);
      if (this.closed || table.get(id)?.address !== known.address) return;
      // NOT_SERVING or gone is a drain; a check that timed out is a busy worker, not a drain.
      if (reason !== undefined && !reason.startsWith('DEADLINE_EXCEEDED')) {
        table.update(heartbeat);
        return;
      }
      if (this.deniedDrains.has(id) || this.deniedDrains.size >= MAX_REFUSED_REMEMBERED) return;
      this.deniedDrains.add(id);
      logger.warn({ worker_id: bounded(id, MAX_LOGGED), address: bounded(known.address, MAX_LOGGED) }, 'draining claim refused: the worker itself still says SERVING');
    });
    this.drainChecks.set(id, check);
  }

  /** Remembers the refusal (bounded) and logs it once per worker id while remembered. */
  private refuse(id: string, address: string, reason: string): void {
    const first = !this.refused.has(id);
    this.refused.delete(id);
    this.refused.set(id, { address, retryAt: Date.now() + this.options.retryRefusedMs });
    for (const oldest of this.refused.keys()) {
      if (this.refused.size <= MAX_REFUSED_REMEMBERED) break;
      this.refused.delete(oldest);
    }
    if (first) {
      this.options.logger.warn(
        { worker_id: bounded(id, MAX_LOGGED), address: bounded(address, MAX_LOGGED), reason },
        'worker refused: no successful health check at the address its heartbeat announced',
      );
    }
  }

  private checkKnown(): void {
    const { table } = this.options;
    for (const worker of table.list()) {
      if (this.outageChecks.has(worker.id)) continue;
      this.outageChecks.add(worker.id);
      void this.health(worker.id, worker.address).then((reason) => {
        this.outageChecks.delete(worker.id);
        // Heartbeats may have resumed (or the worker moved) while the check ran: then they decide.
        if (reason === undefined || !this.outageTimer || table.get(worker.id)?.address !== worker.address) return;
        table.remove(worker.id, `health check failed while NATS is down: ${reason}`);
      });
    }
  }
}
