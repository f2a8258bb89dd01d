/**
 * The router's calls to workers: one gRPC client per worker in the routing table (closed
 * when the worker leaves), the requests this router has in flight at each worker (what
 * picking balances on), and the calls to abort when a worker vanishes mid-call.
 *
 * The in-flight count lives here, with the calls, not on the routing table's entries:
 * heartbeats replace those entries, and a call that started before a heartbeat would
 * otherwise decrement a stale object and leave the live count growing.
 */
import * as grpc from '@grpc/grpc-js';
import { clientOptions, meshChannelCredentials, MESH_CHANNEL_OPTIONS, type MeshTls } from '@infermesh/grpc';
import { BATCH_HEADROOM_BYTES } from '@infermesh/contracts';
import type { RoutingTable } from './routing-table.js';
import { WorkerChannel } from './worker-channel.js';

/** One call in progress at a worker. */
export interface WorkerCall {
  /** Aborted when the call's own signal aborts, or when the worker vanishes. */
  readonly signal: AbortSignal;
  /** True when the worker vanished (stopped heartbeating or became unreachable) during the call. */
  readonly vanished: boolean;
  /** Ends the call's share of the worker's in-flight count; idempotent. */
  release(): void;
}

interface WorkerState {
  address: string;
  client: grpc.Client;
  /** The batch stream to the worker, over the same connection as `client`. */
  channel: WorkerChannel;
  /** Client requests in calls not yet answered. */
  inFlight: number;
  calls: Set<AbortController>;
  /** The worker left the routing table; its client closes with its last call. */
  left: boolean;
}

export class WorkerPool {
  private readonly workers = new Map<string, WorkerState>();

  /** `tls`: mesh TLS, under which a worker's certificate must name the worker id it announced. */
  constructor(table: RoutingTable, private readonly maxMessageBytes: number, private readonly tls?: MeshTls) {
    table.onChange((change) => {
      if (change.kind !== 'left') return;
      const state = this.workers.get(change.worker.id);
      if (!state) return;
      state.left = true;
      // A draining worker finishes what it has; a vanished one will never answer: abort so the router retries elsewhere.
      if (change.reason !== 'draining') for (const controller of [...state.calls]) controller.abort(new Error(`worker ${change.worker.id} vanished`));
      if (state.calls.size === 0) this.close(change.worker.id);
    });
  }

  /** Client requests this router has in flight at the worker (0 for a worker it never called). */
  inFlight(workerId: string): number {
    return this.workers.get(workerId)?.inFlight ?? 0;
  }

  /** The worker's client (created on first use, replaced when its address changes). */
  client(workerId: string, address: string): grpc.Client {
    return this.state(workerId, address).client;
  }

  /** The worker's batch stream (opened on first use, replaced when its address changes). */
  channel(workerId: string, address: string): WorkerChannel {
    return this.state(workerId, address).channel;
  }

  /**
   * Runs `use` with a client to the worker `workerId` at `address`, made as the router's
   * calls to that worker are (so with the same credentials): the worker's own client when
   * it is at that address, otherwise one made for this use and closed afterwards. A check
   * of an address that a heartbeat claims must not replace the connection of a worker
   * already known by that id.
   */
  async withClient<T>(workerId: string, address: string, use: (client: grpc.Client) => Promise<T>): Promise<T> {
    const existing = this.workers.get(workerId);
    if (existing && existing.address === address && !existing.left) return use(existing.client);
    const client = this.connect(workerId, address);
    try {
      return await use(client);
    } finally {
      client.close();
    }
  }

  /** Counts `requests` in flight at the worker until released, and makes the call abortable when the worker vanishes. */
  begin(workerId: string, address: string, requests: number, parent?: AbortSignal): WorkerCall {
    const state = this.state(workerId, address);
    const controller = new AbortController();
    let vanished = false;
    let released = false;
    const onParentAbort = () => controller.abort(parent?.reason);
    if (parent?.aborted) controller.abort(parent.reason);
    else parent?.addEventListener('abort', onParentAbort, { once: true });
    controller.signal.addEventListener('abort', () => (vanished = !parent?.aborted), { once: true });
    state.inFlight += requests;
    state.calls.add(controller);
    return {
      signal: controller.signal,
      get vanished() {
        return vanished;
      },
      release: () => {
        if (released) return;
        released = true;
        parent?.removeEventListener('abort', onParentAbort);
        state.inFlight -= requests;
        state.calls.delete(controller);
        // The worker left while this call was in progress: its client goes with the last call.
        if (state.calls.size === 0 && state.left && this.workers.get(workerId) === state) this.close(workerId);
      },
    };
  }

  close(workerId: string): void {
    const state = this.workers.get(workerId);
    state?.channel.close();
    state?.client.close();
    this.workers.delete(workerId);
  }

  closeAll(): void {
    for (const id of [...this.workers.keys()]) this.close(id);
  }

  private state(workerId: string, address: string): WorkerState {
    const existing = this.workers.get(workerId);
    if (existing && existing.address === address && !existing.left) return existing;
    if (existing) {
      // The same id at a new address (a restarted worker), or back after leaving. The state
      // object is kept, never replaced, so calls in progress release into the live count.
      existing.channel.close();
      existing.client.close();
      existing.client = this.connect(workerId, address);
      existing.channel = new WorkerChannel(existing.client, `worker ${workerId} at ${address}`);
      existing.address = address;
      existing.left = false;
      return existing;
    }
    const client = this.connect(workerId, address);
    const state: WorkerState = { address, client, channel: new WorkerChannel(client, `worker ${workerId} at ${address}`), inFlight: 0, calls: new Set(), left: false };
    this.workers.set(workerId, state);
    return state;
  }

  private connect(workerId: string, address: string): grpc.Client {
    return new grpc.Client(address, meshChannelCredentials(this.tls, { role: 'worker', name: workerId }), {
      ...clientOptions(this.maxMessageBytes),
      ...MESH_CHANNEL_OPTIONS,
      // A batch message may exceed the public limit by its framing; answers are bounded by the worker.
      'grpc.max_send_message_length': this.maxMessageBytes + BATCH_HEADROOM_BYTES,
      'grpc.max_receive_message_length': -1,
    });
  }
}
