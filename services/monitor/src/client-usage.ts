/**
 * Usage per client (the id of the API key a request presented) and model: requests,
 * errors and items, what a per-key quota or a bill is made of. Bounded like the model
 * series, whatever ids arrive: at most `maxClients` ids and `maxSeries` (client, model)
 * pairs; the rest are counted under `_other`.
 */
import { MAX_LABEL_LENGTH } from './known-models.js';
import type { PrometheusText } from './prometheus-text.js';

/** Requests made without a key (a router without keys, or an open model). */
export const ANONYMOUS = 'anonymous';
export const OTHER = '_other';

export interface ClientUsageRow {
  clientId: string;
  model: string;
  requests: number;
  errors: number;
  items: number;
}

export interface ClientUsageOptions {
  maxClients?: number;
  maxSeries?: number;
}

const key = (clientId: string, model: string) => `${clientId}\u0000${model}`;

export class ClientUsage {
  private readonly rowsByKey = new Map<string, ClientUsageRow>();
  private readonly clients = new Set<string>();
  readonly maxClients: number;
  readonly maxSeries: number;

  constructor(options: ClientUsageOptions = {}) {
    this.maxClients = options.maxClients ?? 1000;
    this.maxSeries = options.maxSeries ?? 10_000;
  }

  /** `model` is the label the request was counted under in the model series (already bounded). */
  record(clientId: string, model: string, ok: boolean, items: number): void {
    const row = this.rowOf(this.labelOf(clientId), model);
    row.requests += 1;
    if (!ok) row.errors += 1;
    row.items += items;
  }

  /** Rows for one client id and/or model (every one when not given), sorted by client then model. */
  rows(filter: { clientId?: string; model?: string } = {}): ClientUsageRow[] {
    return [...this.rowsByKey.values()]
      .filter((r) => (filter.clientId === undefined || r.clientId === filter.clientId) && (filter.model === undefined || r.model === filter.model))
      .sort((a, b) => (key(a.clientId, a.model) < key(b.clientId, b.model) ? -1 : 1))
      .map((r) => ({ ...r }));
  }

  get clientCount(): number {
    return this.clients.size;
  }

  writePrometheus(out: PrometheusText): void {
    const rows = this.rows();
    const families = [
      ['infermesh_client_requests_total', 'Inference requests per client (API key id; "anonymous" without a key) and model.', (r: ClientUsageRow) => r.requests],
      ['infermesh_client_errors_total', 'Inference requests per client and model answered with an error.', (r: ClientUsageRow) => r.errors],
      ['infermesh_client_items_total', 'Rows (leading dimension) in the inference requests of each client and model.', (r: ClientUsageRow) => r.items],
    ] as const;
    for (const [name, help, value] of families) {
      out.family(name, 'counter', help);
      for (const r of rows) out.sample(name, [['client', r.clientId], ['model', r.model]], value(r));
    }
  }

  toJSON(): ClientUsageRow[] {
    return this.rows();
  }

  restore(saved: readonly ClientUsageRow[]): void {
    this.rowsByKey.clear();
    this.clients.clear();
    for (const r of saved) {
      const row = this.rowOf(this.labelOf(r.clientId), r.model);
      row.requests += r.requests;
      row.errors += r.errors;
      row.items += r.items;
    }
  }

  private labelOf(clientId: string): string {
    if (clientId === '') return ANONYMOUS;
    if (clientId.length > MAX_LABEL_LENGTH) return OTHER;
    if (this.clients.has(clientId) || clientId === OTHER) return clientId;
    if (this.clients.size >= this.maxClients) return OTHER;
    this.clients.add(clientId);
    return clientId;
  }

  private rowOf(clientId: string, model: string): ClientUsageRow {
    let k = key(clientId, model);
    let row = this.rowsByKey.get(k);
    if (row) return row;
    // Past the bound, a new pair is counted under `_other` for its model: at most one more row per model.
    if (this.rowsByKey.size >= this.maxSeries) {
      k = key(OTHER, model);
      row = this.rowsByKey.get(k);
      if (row) return row;
      clientId = OTHER;
    }
    row = { clientId, model, requests: 0, errors: 0, items: 0 };
    this.rowsByKey.set(k, row);
    return row;
  }
}
