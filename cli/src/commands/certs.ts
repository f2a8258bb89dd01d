/**
 * infermesh certs: a development CA and a certificate for each mesh service, naming it as
 * spiffe://infermesh/<role>/<name> (what routers and workers check). For one machine or a
 * test cluster; production certificates come from the cluster's own CA with the same names.
 */
import { parseArgs } from 'node:util';
import { join, relative } from 'node:path';
import { issueDevCertificates, type Holder } from '@infermesh/grpc';

export const CERTS_USAGE = `usage: infermesh certs [--dir DIR] [--workers ID,ID,...] [--fresh]

Writes a development CA (ca.crt, ca.key, kept unless --fresh) and a certificate and key for
each mesh service into DIR (default .data/certs):
  router.crt        spiffe://infermesh/router/router (also localhost, 127.0.0.1: usable as
                    the public endpoint's certificate on this machine)
  preprocessor.crt  spiffe://infermesh/preprocessor/preprocessor
  monitor.crt       spiffe://infermesh/monitor/monitor
  operator.crt      spiffe://infermesh/operator/operator (the CLI, calling the monitor)
  worker.crt        spiffe://infermesh/worker/<id> for each --workers id
                    (default worker-cpu0..worker-cpu7 and worker-gpu0..worker-gpu7, the ids
                    the supervisor gives with WORKER_ID_PREFIX=worker)
Point each service at its files: MESH_TLS_CA_FILE=DIR/ca.crt MESH_TLS_CERT_FILE=DIR/<service>.crt
MESH_TLS_KEY_FILE=DIR/<service>.key.`;

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

export function certs(args: string[], root: string): number {
  const { values } = parseArgs({
    args,
    options: {
      dir: { type: 'string', default: join(root, '.data', 'certs') },
      workers: { type: 'string' },
      fresh: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    allowPositionals: false,
  });
  if (values.help) {
    console.log(CERTS_USAGE);
    return 0;
  }
  const workerIds = values.workers ? values.workers.split(',').map((id) => id.trim()).filter(Boolean) : defaultWorkerIds();
  for (const id of workerIds) if (!/^[A-Za-z0-9_-]{1,128}$/.test(id)) throw new Error(`--workers: '${id.slice(0, 64)}' is not a worker id (letters, digits, '-' and '_')`);
  const issued = issueDevCertificates(values.dir, meshHolders(workerIds), { fresh: values.fresh });
  const shown = relative(process.cwd(), issued.dir) || '.';
  console.log(`wrote ${shown}/ca.crt and certificates for ${[...issued.issued.keys()].join(', ')} (workers: ${workerIds.length})`);
  console.log(`a service runs mutual TLS with MESH_TLS_CA_FILE=${shown}/ca.crt MESH_TLS_CERT_FILE=${shown}/<service>.crt MESH_TLS_KEY_FILE=${shown}/<service>.key`);
  return 0;
}
