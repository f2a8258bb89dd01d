/**
 * `infermesh feedback` against a running mesh with API keys and a NATS user per service:
 * a labels file sent to the router's FeedbackService, what reaches the FEEDBACK stream,
 * a re-run, and the lines that cannot be stored, each reported with its line number.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectBus, events, natsConnectOptions, streamName, type Bus } from '@infermesh/bus';
import type { Feedback__Output } from '@infermesh/contracts';
import { createLogger } from '@infermesh/log';
import { startMesh, ROOT, type Mesh } from './helpers/mesh.js';

let mesh: Mesh;
let dir: string;
let admin: Bus;
const keys: Record<string, string> = {};

function cli(args: string[], key = ''): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(process.execPath, [join(ROOT, 'cli/dist/main.js'), ...args, '--address', mesh.routerAddress], { timeout: 120_000, env: { ...process.env, INFERMESH_API_KEY: key } }, (error, stdout, stderr) =>
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    ),
  );
}

async function labelsFile(name: string, lines: (object | string)[]): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, `${lines.map((line) => (typeof line === 'string' ? line : JSON.stringify(line))).join('\n')}\n`);
  return file;
}

/** Everything on the FEEDBACK stream, through an ordered consumer. */
async function storedFeedback(): Promise<Feedback__Output[]> {
  const name = streamName('infermesh', 'FEEDBACK');
  const { state } = await (await admin.js.jetstreamManager()).streams.info(name);
  const stored: Feedback__Output[] = [];
  if (state.messages === 0) return stored;
  const consumer = await admin.js.consumers.get(name);
  for await (const message of await consumer.fetch({ max_messages: state.messages, expires: 5000 })) {
    stored.push(events.feedback.decode(message.data));
    if (message.seq >= state.last_seq) break;
  }
  return stored;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'infermesh-feedback-'));
  const keysFile = join(dir, 'keys.yaml');
  for (const [id, models] of [['labeller', 'iris'], ['everything', '*']]) {
    const made = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, [join(ROOT, 'cli/dist/main.js'), 'keys', 'create', '--id', id, '--models', models, '--file', keysFile], (error, stdout) => (error ? reject(error) : resolve(stdout))),
    );
    keys[id] = made.trim();
  }
  mesh = await startMesh({ natsAuth: true, traces: false, workerEnv: { WORKER_MODELS: 'iris,text-direction' }, routerEnv: { ROUTER_API_KEYS_FILE: keysFile } });
  admin = await connectBus({ url: mesh.nats.url, name: 'feedback-test', prefix: 'infermesh', logger: createLogger('feedback-test', { level: 'silent' }), connectOptions: natsConnectOptions(mesh.nats.credentials('admin')) });
});

afterAll(async () => {
  await admin?.drain();
  await mesh?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('infermesh feedback', () => {
  it('stores every line of a labels file on FEEDBACK, in calls of 500, under the key\'s id, and exits 0', async () => {
    const file = await labelsFile('iris.jsonl', Array.from({ length: 1200 }, (_, i) => ({ id: `iris-${i}`, label: ['setosa', 'versicolor', 'virginica'][i % 3] })));
    const run = await cli(['feedback', '--file', file, '--model', 'iris'], keys.labeller);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^1200 stored, 0 already labelled, 0 invalid, 0 not found, 0 unavailable {2}\(1200 lines of .*iris\.jsonl in /);
    expect(run.stderr).toMatch(/1200\/1200 100%/); // the progress line
    const stored = (await storedFeedback()).filter((f) => f.requestId.startsWith('iris-'));
    expect(stored).toHaveLength(1200);
    expect(stored.find((f) => f.requestId === 'iris-4')).toMatchObject({ model: 'iris', labels: ['versicolor'], clientId: 'labeller' });
  });

  it('finds every line already labelled when run again, which is not a failure', async () => {
    const file = join(dir, 'iris.jsonl');
    const before = (await storedFeedback()).length;
    const run = await cli(['feedback', '--file', file, '--model', 'iris'], keys.labeller);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^0 stored, 1200 already labelled, 0 invalid/);
    expect((await storedFeedback()).length).toBe(before);
  });

  it('reports each line it cannot store with its number and why, stores the others, and exits 3', async () => {
    const file = await labelsFile('mixed.jsonl', [
      { id: 'mixed-1', label: 'setosa', model: 'iris' },
      '{"id": "mixed-2", "label": ',
      '',
      { id: 'mixed-4', label: 'cat', model: 'resnet' },
      { id: 'mixed-5', label: '', model: 'iris' },
      { id: 'mixed-6', label: 'setosa' },
      { id: 'mixed-7', labels: ['upright', 'rotated_180'], model: 'text-direction' },
    ]);
    const run = await cli(['feedback', '--file', file], keys.everything);
    expect(run.code, run.stderr).toBe(3);
    const [counts, ...details] = run.stdout.trim().split('\n');
    expect(counts).toMatch(/^2 stored, 0 already labelled, 3 invalid, 1 not found, 0 unavailable /);
    expect(details).toEqual([
      'invalid:',
      expect.stringMatching(/^ {2}line 2: not JSON: /),
      '  line 5: label 0 is empty',
      '  line 6: no model: give "model" on the line, or --model',
      'not found:',
      expect.stringMatching(/^ {2}line 4: model 'resnet' is not served by this mesh \(models: .*iris.*\)$/),
    ]);
    const stored = (await storedFeedback()).filter((f) => f.requestId.startsWith('mixed-'));
    expect(stored.map((f) => [f.requestId, f.labels])).toEqual([['mixed-1', ['setosa']], ['mixed-7', ['upright', 'rotated_180']]]);
  });

  it('prints the summary as JSON with --json, a line of a model the key may not call counted as denied', async () => {
    const file = await labelsFile('denied.jsonl', [{ id: 'denied-1', label: 'setosa', model: 'iris' }, { id: 'denied-2', label: 'upright', model: 'text-direction' }]);
    const run = await cli(['feedback', '--file', file, '--json'], keys.labeller);
    expect(run.code).toBe(3);
    const summary = JSON.parse(run.stdout) as { lines: number; counts: Record<string, number>; examples: Record<string, { line: number; message: string }[]> };
    expect(summary.lines).toBe(2);
    expect(summary.counts).toMatchObject({ stored: 1, denied: 1, invalid: 0, unavailable: 0 });
    expect(summary.examples.denied).toEqual([{ line: 2, message: "key labeller may not call model 'text-direction'" }]);
  });

  it('stops with UNAUTHENTICATED and exits 1 without an API key, storing nothing', async () => {
    const file = await labelsFile('nokey.jsonl', [{ id: 'nokey-1', label: 'setosa', model: 'iris' }]);
    const run = await cli(['feedback', '--file', file]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/UNAUTHENTICATED: missing API key/);
    expect((await storedFeedback()).filter((f) => f.requestId === 'nokey-1')).toEqual([]);
  });

  // Last: NATS goes down for the whole mesh.
  it('counts lines the router could not store while NATS is down as unavailable (exit 3), and stores them on a re-run once it is back', async () => {
    const file = await labelsFile('outage.jsonl', [{ id: 'outage-1', label: 'setosa' }, { id: 'outage-2', label: 'virginica' }]);
    await mesh.nats.kill();
    const during = await cli(['feedback', '--file', file, '--model', 'iris', '--json'], keys.labeller);
    expect(during.code, during.stderr).toBe(3);
    const summary = JSON.parse(during.stdout) as { counts: Record<string, number>; examples: Record<string, { line: number; message: string }[]> };
    expect(summary.counts).toMatchObject({ stored: 0, unavailable: 2 });
    expect(summary.examples.unavailable?.[0].message).toMatch(/sending it again is safe/);
    await mesh.nats.restart();
    let after = await cli(['feedback', '--file', file, '--model', 'iris'], keys.labeller);
    // The router reconnects within a second or so: until then its answers are still UNAVAILABLE.
    for (let attempt = 0; after.code !== 0 && attempt < 20; attempt++) after = await cli(['feedback', '--file', file, '--model', 'iris'], keys.labeller);
    expect(after.code, after.stdout).toBe(0);
    // This test's own connection reconnects on its own schedule: its first JetStream requests may time out.
    let stored: Feedback__Output[] | undefined;
    for (let attempt = 0; !stored && attempt < 20; attempt++) stored = await storedFeedback().catch(() => undefined);
    expect(stored?.filter((f) => f.requestId.startsWith('outage-')).map((f) => f.requestId).sort()).toEqual(['outage-1', 'outage-2']);
  });
});
