/** One gRPC client per worker in the routing table, closed when the worker leaves. */
import * as grpc from '@grpc/grpc-js';
import { contracts, type GRPCInferenceServiceClient } from '@infermesh/contracts';
import { clientOptions } from '@infermesh/grpc';
import type { RoutingTable } from './routing-table.js';

export class WorkerPool {
  private readonly clients = new Map<string, { address: string; client: GRPCInferenceServiceClient }>();

  constructor(table: RoutingTable, private readonly maxMessageBytes: number) {
    table.onChange((change) => {
      if (change.kind === 'left') this.close(change.worker.id);
    });
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
