/**
 * infermesh certs: a development CA and a certificate for each mesh service, naming it as
 * spiffe://infermesh/<role>/<name> (what routers and workers check). For one machine or a
 * test cluster; production certificates come from the cluster's own CA with the same names.
 */
import { relative } from 'node:path';
import { issueDevCertificates, type Holder } from '@infermesh/grpc';

/** The worker ids `infermesh up`'s supervisor gives (WORKER_ID_PREFIX=worker): CPU slots and GPUs. */
export function defaultWorkerIds(): string[] {
  return [...Array.from({ length: 8 }, (_, i) => `worker-cpu${i}`), ...Array.from({ length: 8 }, (_, i) => `worker-gpu${i}`)];
}

export function meshHolders(workerIds: string[]): Holder[] {
  return [
    { stem: 'router', identities: [{ role: 'router', name: 'router' }] },
    { stem: 'preprocessor', identities: [{ role: 'preprocessor', name: 'preprocessor' }] },
    { stem: 'monitor', identities: [{ role: 'monitor', name: 'monitor' }] },
    { stem: 'operator', identities: [{ role: 'operator', name: 'operator' }] },
    { stem: 'worker', identities: workerIds.map((name) => ({ role: 'worker' as const, name })) },
  ];
}

/** "a,b": worker ids, each as the mesh names them; throws naming the first that is not one. */
export function parseWorkerIds(text: string): string[] {
  const ids = text.split(',').map((id) => id.trim()).filter(Boolean);
  if (ids.length === 0) throw new Error('--workers: no worker id');
  for (const id of ids) if (!/^[A-Za-z0-9_-]{1,128}$/.test(id)) throw new Error(`--workers: '${id.slice(0, 64)}' is not a worker id (letters, digits, '-' and '_')`);
  return ids;
}

export interface CertsOptions {
  /** Where the files go (the CLI's default: .data/certs under the repository). */
  dir: string;
  /** Default: defaultWorkerIds(). */
  workers?: string[];
  /** A new CA too. */
  fresh: boolean;
  json: boolean;
}

/** `infermesh certs`; returns the exit code. */
export function certs(options: CertsOptions): number {
  const workerIds = options.workers ?? defaultWorkerIds();
  const issued = issueDevCertificates(options.dir, meshHolders(workerIds), { fresh: options.fresh });
  if (options.json) {
    const files = Object.fromEntries([...issued.issued].map(([stem, f]) => [stem, { certFile: f.certFile, keyFile: f.keyFile }]));
    console.log(JSON.stringify({ dir: issued.dir, caFile: issued.caFile, certificates: files, workers: workerIds }, null, 2));
    return 0;
  }
  const shown = relative(process.cwd(), issued.dir) || '.';
  console.log(`wrote ${shown}/ca.crt and certificates for ${[...issued.issued.keys()].join(', ')} (workers: ${workerIds.length})`);
  console.log(`a service runs mutual TLS with MESH_TLS_CA_FILE=${shown}/ca.crt MESH_TLS_CERT_FILE=${shown}/<service>.crt MESH_TLS_KEY_FILE=${shown}/<service>.key`);
  return 0;
}
