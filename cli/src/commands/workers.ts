/** infermesh workers: the workers announcing themselves on NATS, with device, provider, models and load. */
import { connectBus, events, natsConnectOptions, type BusOptions } from '@infermesh/bus';
import { runningMesh } from '../client.js';
import { createLogger } from '@infermesh/log';
import type { WorkerHeartbeat__Output } from '@infermesh/contracts';

/** `connectOptions`: credentials (by default from NATS_USER / NATS_PASSWORD_FILE or NATS_CREDS_FILE, as the services read them). */
export async function collectWorkers(natsUrl: string, listenMs: number, connectOptions: BusOptions['connectOptions'] = natsConnectOptions(process.env), prefix = process.env.NATS_SUBJECT_PREFIX ?? 'infermesh'): Promise<WorkerHeartbeat__Output[]> {
  const bus = await connectBus({ url: natsUrl, name: 'infermesh cli', prefix, logger: createLogger('cli', { level: 'silent' }), connectOptions });
  const seen = new Map<string, WorkerHeartbeat__Output>();
  const sub = bus.subscribe(bus.subjects.heartbeats, events.heartbeat, ({ message }) => {
    if (message.draining) seen.delete(message.workerId);
    else seen.set(message.workerId, message);
  });
  await new Promise((resolve) => setTimeout(resolve, listenMs));
  sub.unsubscribe();
  await bus.drain();
  return [...seen.values()].sort((a, b) => a.workerId.localeCompare(b.workerId));
}

/** "2 (worker-cpu0 on cpu, worker-cpu1 on cpu)" */
export function summarize(workers: readonly WorkerHeartbeat__Output[]): string {
  if (workers.length === 0) return 'none announced yet';
  return `${workers.length} (${workers.map((w) => `${w.workerId} on ${w.device}/${w.executionProvider || 'no model'}`).join(', ')})`;
}

/** `--nats`, else NATS_URL (with NATS_USER etc.), else the mesh `infermesh up` runs here (as its operator), else 4222. */
export async function listWorkers(natsOption: string | undefined, json: boolean): Promise<void> {
  const running = natsOption || process.env.NATS_URL ? undefined : runningMesh();
  const natsUrl = natsOption ?? process.env.NATS_URL ?? running?.nats.url ?? 'nats://127.0.0.1:4222';
  const workers = await collectWorkers(natsUrl, 1500, natsConnectOptions(running?.nats.settings ?? process.env));
  if (json) {
    console.log(JSON.stringify(workers, null, 2));
    return;
  }
  if (workers.length === 0) {
    console.log('no worker announced itself in 1.5 s');
    return;
  }
  for (const w of workers) {
    console.log(`${w.workerId}  ${w.address}  device ${w.device}  provider ${w.executionProvider}  queue ${w.queueDepth}  in flight ${w.inFlight}`);
    console.log(`  models: ${w.models.map((m) => `${m.name}:${m.version}`).join(', ')}`);
  }
}
