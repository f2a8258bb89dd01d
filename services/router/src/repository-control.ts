/**
 * RepositoryModelLoad / RepositoryModelUnload carried to the workers: one ControlRequest to
 * each worker the routing table knows (any of them may hold the model, or be able to: its
 * repository decides), on NATS request/reply, and one answer from their replies.
 */
import { controlCodecs, MAX_CONTROL_MESSAGE, type ControlResponse__Output } from '@infermesh/contracts';
import { ServiceError, Status, notFound, unavailable } from '@infermesh/grpc';
import type { Bus } from '@infermesh/bus';
import type { Logger } from '@infermesh/log';
import type { RoutingTable } from './routing-table.js';

export interface ControlOptions {
  bus: Bus;
  table: RoutingTable;
  logger: Logger;
  /** How long a worker has to load (or drain) and answer. */
  timeoutMs: number;
}

type Reply = { workerId: string; response?: ControlResponse__Output; error?: string };

/** Workers asked at once at most: the rest wait their turn (a mesh has tens of workers, not thousands). */
const CONCURRENT_REQUESTS = 64;

export class RepositoryControl {
  constructor(private readonly options: ControlOptions) {}

  /** Resolves once every worker that holds or can hold the model has it READY; throws the reasons otherwise. */
  load(model: string, versions: string[], requestedBy: string): Promise<void> {
    return this.ask('LOAD', model, versions, requestedBy);
  }

  /** Resolves once every worker holding the model has drained and freed the versions. */
  unload(model: string, versions: string[], requestedBy: string): Promise<void> {
    return this.ask('UNLOAD', model, versions, requestedBy);
  }

  private async ask(action: 'LOAD' | 'UNLOAD', model: string, versions: string[], requestedBy: string): Promise<void> {
    const { table, logger } = this.options;
    const workers = table.list();
    if (workers.length === 0) throw unavailable('no worker is connected to the mesh: nothing to load or unload on');
    const data = controlCodecs.request().encode({ action, model, versions, requestedBy });
    const replies: Reply[] = [];
    for (let i = 0; i < workers.length; i += CONCURRENT_REQUESTS) {
      replies.push(...(await Promise.all(workers.slice(i, i + CONCURRENT_REQUESTS).map((w) => this.request(w.id, data)))));
    }
    const failed = replies.filter((r) => r.response?.status === 'FAILED');
    const silent = replies.filter((r) => r.error);
    const done = replies.filter((r) => r.response?.status === 'OK');
    logger.info({
      action, model, versions, requested_by: requestedBy, ok: done.map((r) => r.workerId), failed: failed.map((r) => r.workerId), silent: silent.map((r) => r.workerId),
    }, 'repository control');
    const describe = (list: Reply[]) => list.map((r) => `worker ${r.workerId}: ${(r.response?.message || r.error || '').slice(0, MAX_CONTROL_MESSAGE)}`).join('; ');
    if (failed.length) {
      throw new ServiceError(Status.FAILED_PRECONDITION, `failed to ${action.toLowerCase()} model '${model}' (the versions serving are kept): ${describe(failed)}`);
    }
    if (silent.length) throw unavailable(`model '${model}' not ${action === 'LOAD' ? 'loaded' : 'unloaded'} on every worker: ${describe(silent)}`);
    if (done.length === 0) throw notFound(`no worker's model repository has model '${model}'`);
  }

  private async request(workerId: string, data: Uint8Array): Promise<Reply> {
    const { bus, timeoutMs } = this.options;
    try {
      const msg = await bus.nc.request(bus.subjects.control(workerId), data, { timeout: timeoutMs });
      return { workerId, response: controlCodecs.response().decode(msg.data) };
    } catch (error) {
      const message = (error as Error).message;
      return { workerId, error: /timeout/i.test(message) ? `no answer within ${timeoutMs} ms` : /no responders/i.test(message) ? 'does not take control requests (an older worker, or stopping)' : message };
    }
  }
}
