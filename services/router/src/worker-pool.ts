/** One gRPC client per worker in the routing table, closed when the worker leaves. */
import * as grpc from '@grpc/grpc-js';
import { contracts, type GRPCInferenceServiceClient } from '@infermesh/contracts';
import { clientOptions } from '@infermesh/grpc';
import type { RoutingTable } from './routing-table.js';

/** One request in progress at a worker. */
export interface Attempt {
  /** Aborted when the request's own signal aborts, or when the worker vanishes. */
  signal: AbortSignal;
  /** True when the worker vanished (stopped heartbeating or became unreachable) mid-request. */
  readonly vanished: boolean;
  release(): void;
}

export class WorkerPool {
  private readonly clients = new Map<string, { address: string; client: GRPCInferenceServiceClient }>();
  private readonly attempts = new Map<string, Set<AbortController>>();

  constructor(table: RoutingTable, private readonly maxMessageBytes: number) {
    table.onChange((change) => {
      if (change.kind !== 'left') return;
      // A draining worker finishes what it has; a vanished one will never answer: abort so the router retries elsewhere.
      if (change.reason !== 'draining') for (const controller of this.attempts.get(change.worker.id) ?? []) controller.abort(new Error(`worker ${change.worker.id} vanished`));
      this.close(change.worker.id);
    });
  }

  track(workerId: string, parent: AbortSignal): Attempt {
    const controller = new AbortController();
    let vanished = false;
    const onParentAbort = () => controller.abort(parent.reason);
    if (parent.aborted) controller.abort(parent.reason);
    else parent.addEventListener('abort', onParentAbort, { once: true });
    controller.signal.addEventListener('abort', () => (vanished = !parent.aborted), { once: true });
    let set = this.attempts.get(workerId);
    if (!set) this.attempts.set(workerId, (set = new Set()));
    set.add(controller);
    return {
      signal: controller.signal,
      get vanished() {
        return vanished;
      },
      release: () => {
        parent.removeEventListener('abort', onParentAbort);
        set.delete(controller);
        if (set.size === 0 && this.attempts.get(workerId) === set) this.attempts.delete(workerId);
      },
    };
  }

  client(workerId: string, address: string): GRPCInferenceServiceClient {
    const existing = this.clients.get(workerId);
    if (existing && existing.address === address) return existing.client;
    if (existing) existing.client.close();
    const Client = contracts().inference.GRPCInferenceService;
    const client = new Client(address, grpc.credentials.createInsecure(), clientOptions(this.maxMessageBytes));
    this.clients.set(workerId, { address, client });
    return client;
  }

  close(workerId: string): void {
    this.clients.get(workerId)?.client.close();
    this.clients.delete(workerId);
  }

  closeAll(): void {
    for (const id of [...this.clients.keys()]) this.close(id);
  }
}
