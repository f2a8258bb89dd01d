/**
 * The monitor's status page in a real browser, every service its own process: headless
 * Chromium opens the page before any prediction, sees it say so and list the worker, then
 * sees the predictions made after drawn in each model's charts without a reload (the page
 * follows the monitor over Server-Sent Events); a worker's forged name shows as text.
 *
 * Chromium is required, as nats-server is: the test fails when it is missing (CI installs
 * Debian's `chromium`; CHROMIUM_PATH names another). A screenshot of the page is saved in
 * test/artifacts/status-page.png (path printed).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import * as grpc from '@grpc/grpc-js';
import { connectBus, events, type Bus } from '@infermesh/bus';
import { contracts, type FeedbackItem, type FeedbackResponse__Output } from '@infermesh/contracts';
import { createLogger } from '@infermesh/log';
import { startMesh, ROOT, type Mesh } from './helpers/mesh.js';
import { bytesTensor, inferenceClient, type InferenceClient } from './helpers/client.js';

const logger = createLogger('status-page-e2e', { level: 'silent' });
const SCREENSHOT = join(ROOT, 'test/artifacts/status-page.png');
/** Text a page that parsed names as HTML would run; the test looks for its mark. */
const FORGED = '<img src=x onerror="document.body.dataset.injected=1">';

let mesh: Mesh;
let client: InferenceClient;
let feedback: InstanceType<ReturnType<typeof contracts>['infermesh']['v1']['FeedbackService']>;
let bus: Bus;
let browser: Browser;
let page: Page;
let statusUrl: string;
const pageErrors: string[] = [];

function chromiumBinary(): string {
  for (const candidate of [process.env.CHROMIUM_PATH, 'chromium', 'chromium-browser', '/usr/bin/chromium', '/usr/bin/chromium-browser']) {
    if (!candidate) continue;
    if (candidate.includes('/')) {
      if (existsSync(candidate)) return candidate;
      continue;
    }
    try {
      return execFileSync('sh', ['-c', `command -v ${candidate}`], { encoding: 'utf8' }).trim();
    } catch {
      // not on PATH
    }
  }
  throw new Error('chromium was not found: install it (Debian: apt-get install chromium) or set CHROMIUM_PATH');
}

/** A drift rule the test's inputs break at once. */
const RULES = `rules:
  - name: iris-drift
    kind: drift
    model: iris
    threshold: 0.25
    severity: critical
    summary: "PSI of {{feature}} for {{model}} {{version}} is {{value}}"
`;

const IRIS_ROW = { sepal_length: 6.3, sepal_width: 3.3, petal_length: 6.0, petal_width: 2.5 };

function sendFeedback(items: FeedbackItem[]): Promise<FeedbackResponse__Output> {
  return new Promise((resolve, reject) => {
    feedback.Feedback({ items }, { deadline: Date.now() + 20_000 }, (error, response) => (error ? reject(error) : resolve(response!)));
  });
}

function irisRequest(i: number) {
  return { model_name: 'iris', id: `status-${i}`, inputs: [{ name: 'row', datatype: 'BYTES', shape: [1], contents: { bytes_contents: [Buffer.from(JSON.stringify(IRIS_ROW))] } }] };
}

/** The value of `attribute` on the first element matching `selector`, once `accept` takes it. */
async function waitForAttribute(selector: string, attribute: string, accept: (value: string) => boolean, timeoutMs = 40_000): Promise<string> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await page.locator(selector).first().getAttribute(attribute, { timeout: 1000 }).catch(() => null);
    if (value !== null && accept(value)) return value;
    if (Date.now() > until) throw new Error(`${selector} [${attribute}] is ${JSON.stringify(value)} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

beforeAll(async () => {
  const executablePath = chromiumBinary();
  // Drift judged from 20 inputs (the default 50 would need more requests than the test makes); feedback naming
  // no kept prediction counted unknown after 2 s (the default waits 30 s for a late record).
  const rules = join(mkdtempSync(join(tmpdir(), 'infermesh-status-page-')), 'rules.yaml');
  writeFileSync(rules, RULES);
  mesh = await startMesh({
    traces: false,
    env: { MONITOR_DRIFT_MIN_INPUTS: '20', MONITOR_FEEDBACK_GRACE_MS: '2000', MONITOR_ALERT_RULES_FILE: rules, MONITOR_ALERT_INTERVAL_MS: '500' },
  });
  client = inferenceClient(mesh.routerAddress);
  feedback = new (contracts().infermesh.v1.FeedbackService)(mesh.routerAddress, grpc.credentials.createInsecure());
  bus = await connectBus({ url: mesh.nats.url, name: 'status-page-e2e', prefix: 'infermesh', logger });
  statusUrl = mesh.metricsUrl.replace(/\/metrics$/, '/status');
  // Chromium refuses its sandbox to root (CI runs as root); the page is the test's own.
  browser = await chromium.launch({ executablePath, args: process.getuid?.() === 0 ? ['--no-sandbox'] : [] });
  page = await browser.newPage({ viewport: { width: 1300, height: 1000 } });
  page.on('pageerror', (error) => pageErrors.push(String(error)));
  page.on('console', (message) => {
    if (message.type() === 'error') pageErrors.push(message.text());
  });
  page.on('dialog', (dialog) => {
    pageErrors.push(`dialog: ${dialog.message()}`);
    void dialog.dismiss();
  });
  await page.goto(statusUrl);
}, 120_000);

afterAll(async () => {
  if (page) {
    mkdirSync(join(ROOT, 'test/artifacts'), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true }).then(
      () => console.log(`status page screenshot: ${SCREENSHOT}`),
      (error: unknown) => console.log(`no status page screenshot: ${String(error)}`),
    );
  }
  await browser?.close();
  client?.close();
  feedback?.close();
  await bus?.drain();
  await mesh?.stop();
});

describe('the status page', () => {
  it('says there are no predictions yet, and lists the worker with its device and provider', async () => {
    await page.locator('[data-empty="models"]').waitFor({ timeout: 20_000 });
    expect(await page.locator('[data-empty="models"]').textContent()).toBe('no predictions yet');
    const worker = page.locator('[data-worker="worker-0"]');
    await worker.waitFor({ timeout: 20_000 });
    const cells = await worker.locator('td').allTextContents();
    expect(cells.slice(0, 4)).toEqual(['worker-0', 'cpu', 'cpu', expect.stringContaining('iris 1')]);
    expect(await page.locator('#connection').getAttribute('data-state')).toBe('live');
  });

  it('draws each model\'s predictions in its charts as they are made, without a reload', async () => {
    const upright = await readFile(join(ROOT, 'models/text-direction/samples/upright.png'));
    for (let i = 0; i < 30; i++) await client.call('ModelInfer', irisRequest(i));
    for (let i = 0; i < 3; i++) {
      await client.call('ModelInfer', { model_name: 'text-direction', inputs: [{ name: 'image', datatype: 'BYTES', shape: [1] }], raw_input_contents: [bytesTensor([upright])] });
    }
    const iris = '[data-model="iris"][data-version="1"]';
    await waitForAttribute(iris, 'data-requests', (n) => Number(n) === 30);
    // The charts show complete 5 s steps: the last requests' step completes within seconds.
    for (const chart of ['throughput', 'latency', 'errors']) {
      await waitForAttribute(`${iris} [data-chart="${chart}"] svg`, 'data-points', (n) => Number(n) > 0);
    }
    const totals = await page.locator(`${iris} .totals`).textContent();
    expect(totals).toMatch(/^30 requests · 0 errors · 30 items · p50 [\d.]+ ms · p99 [\d.]+ ms/);
    expect(await page.locator(`${iris} [data-chart="throughput"] svg path.line`).count()).toBe(1);
    await waitForAttribute('[data-model="text-direction"] [data-chart="throughput"] svg', 'data-points', (n) => Number(n) > 0);
  });

  it('shows the drift of inputs unlike the reference: every feature\'s PSI, the largest over time', async () => {
    // Thirty times the same virginica row against the profile of 120 training rows of three species: a large shift.
    const iris = '[data-model="iris"][data-version="1"]';
    // Points are drawn only for samples of enough inputs (20 here); one sampled before the requests were counted is a gap.
    await waitForAttribute(`${iris} [data-chart="drift"] svg`, 'data-points', (n) => Number(n) > 0, 60_000);
    const features = await page.locator(`${iris} table.features tr`).evaluateAll((rows) => rows.map((row) => row.getAttribute('data-feature')));
    expect([...features].sort()).toEqual(['petal_length', 'petal_width', 'sepal_length', 'sepal_width']);
    const largest = await page.locator(`${iris} [data-chart="drift"] .legend li`).first().textContent();
    expect(largest).toMatch(/^max PSI (\d+\.\d{3})$/);
    expect(Number(/(\d+\.\d{3})$/.exec(largest!)![1])).toBeGreaterThan(0.25);
    expect(await page.locator(`${iris} table.features td.bar span.large`).count()).toBeGreaterThan(0);
  });

  it('lists the drift alert as it fires, with its severity, model, feature and summary', async () => {
    const rows = page.locator('#alerts tr[data-alert-rule="iris-drift"]');
    await rows.first().waitFor({ timeout: 30_000 });
    const cells = await rows.first().locator('td').allTextContents();
    expect(cells[0]).toBe('critical');
    expect(cells[1]).toBe('iris-driftdrift');
    expect(cells[2]).toMatch(/^iris 1(sepal_length|sepal_width|petal_length|petal_width)$/);
    expect(cells[4]).toMatch(/^PSI of \w+ for iris 1 is \d/);
    expect(await rows.first().getAttribute('class')).toBe('alert critical');
  });

  it('shows the accuracy the feedback on those predictions gives, and what became of the feedback', async () => {
    // IRIS_ROW is a virginica: eight labels agree with the model, two do not, and one names a request never made.
    const labels = ['virginica', 'virginica', 'virginica', 'virginica', 'virginica', 'virginica', 'virginica', 'virginica', 'setosa', 'setosa'];
    const items = labels.map((label, i) => ({ modelName: 'iris', requestId: `status-${i}`, labels: [label] }));
    const { results } = await sendFeedback([...items, { modelName: 'iris', requestId: 'never-made', labels: ['setosa'] }]);
    expect(results.map((r) => r.statusCode)).toEqual(new Array(11).fill(0));
    const iris = '[data-model="iris"][data-version="1"]';
    // Sampled every 5 s into the page's own history.
    await waitForAttribute(`${iris} [data-chart="accuracy"] svg`, 'data-points', (n) => Number(n) > 0, 60_000);
    const details = page.locator(`${iris} .feedback`);
    await details.filter({ hasText: '1 unknown' }).waitFor({ timeout: 30_000 });
    expect(await details.textContent()).toContain('8 of 10 labelled inputs correct (80.0% in all)');
    expect(await details.textContent()).toContain('feedback for iris: 10 applied, 1 unknown, 0 expired, 0 mismatched');
    expect(await page.locator(`${iris} [data-chart="accuracy"] .legend b`).textContent()).toBe('80.0%');
  }, 90_000);

  it('shows a name from a forged heartbeat as text, never as markup', async () => {
    const heartbeat = {
      workerId: FORGED, address: '127.0.0.1:9', device: FORGED, executionProvider: 'cpu', models: [{ name: FORGED, version: '1', ready: false }], sentAtMs: Date.now(),
    };
    const forged = page.locator('#workers tr', { hasText: 'onerror' });
    for (let i = 0; i < 80 && (await forged.count()) === 0; i++) {
      bus.publish(bus.subjects.heartbeat('forged'), events.heartbeat, { ...heartbeat, sentAtMs: Date.now() });
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    expect((await forged.locator('td').allTextContents()).slice(0, 2)).toEqual([FORGED, FORGED]);
    expect(await page.locator('#workers img').count()).toBe(0);
    expect(await page.locator('body').getAttribute('data-injected')).toBeNull();
  });

  it('ran without a script error', () => {
    expect(pageErrors).toEqual([]);
  });
});
