// deploy/docker/fetch-models.mjs, the workers' init container of components/models-from-url,
// against a real HTTP server on loopback serving real tarballs.
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const script = join(dirname(fileURLToPath(import.meta.url)), 'docker', 'fetch-models.mjs');
const work = mkdtempSync(join(tmpdir(), 'infermesh-fetch-models-'));

/** A tarball of a model repository with `names` (each with config.yaml and 1/model.onnx). */
function tarball(file: string, names: string[], withConfig = true): Buffer {
  const src = mkdtempSync(join(work, 'src-'));
  for (const name of names) {
    mkdirSync(join(src, name, '1'), { recursive: true });
    if (withConfig) writeFileSync(join(src, name, 'config.yaml'), `name: ${name}\n`);
    writeFileSync(join(src, name, '1', 'model.onnx'), Buffer.alloc(4096, 7));
  }
  execFileSync('tar', ['-czf', join(work, file), '-C', src, ...names]);
  return readFileSync(join(work, file));
}
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let server: Server;
let base: string;
const files = new Map<string, Buffer>();

beforeAll(async () => {
  files.set('/models.tar.gz', tarball('models.tar.gz', ['iris', 'text-direction']));
  files.set('/no-config.tar.gz', tarball('no-config.tar.gz', ['iris'], false));
  server = createServer((req, res) => {
    const body = files.get(req.url!.split('?')[0]!);
    if (!body) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'application/gzip', 'content-length': body.length }).end(body);
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((ok) => server.close(() => ok())));

async function fetchModels(env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string; dir: string }> {
  const dir = mkdtempSync(join(work, 'models-'));
  return new Promise((ok) => {
    execFile(process.execPath, [script], { env: { PATH: process.env.PATH, MODEL_REPOSITORY_DIR: dir, ...env }, timeout: 30_000 }, (error, stdout, stderr) =>
      ok({ code: error ? ((error as { code?: number }).code ?? -1) : 0, stdout, stderr, dir }),
    );
  });
}

describe('fetch-models.mjs', () => {
  it('unpacks a tarball whose SHA-256 matches, and leaves no archive behind', async () => {
    const run = await fetchModels({ MODEL_REPOSITORY_URL: `${base}/models.tar.gz?X-Signature=secret`, MODEL_REPOSITORY_SHA256: sha256(files.get('/models.tar.gz')!) });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(readdirSync(run.dir).sort()).toEqual(['iris', 'text-direction']);
    expect(existsSync(join(run.dir, 'iris', '1', 'model.onnx'))).toBe(true);
    expect(run.stdout).toMatch(/SHA-256 verified: iris, text-direction/);
    // A presigned query is not logged.
    expect(run.stdout).not.toContain('secret');
  });

  it('refuses a tarball whose SHA-256 differs, and unpacks nothing', async () => {
    const run = await fetchModels({ MODEL_REPOSITORY_URL: `${base}/models.tar.gz`, MODEL_REPOSITORY_SHA256: '0'.repeat(64) });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/is not MODEL_REPOSITORY_SHA256 0{64}; nothing unpacked/);
    expect(readdirSync(run.dir)).toEqual([]);
  });

  it('refuses a tarball above MODEL_REPOSITORY_MAX_BYTES before reading it', async () => {
    const run = await fetchModels({ MODEL_REPOSITORY_URL: `${base}/models.tar.gz`, MODEL_REPOSITORY_SHA256: sha256(files.get('/models.tar.gz')!), MODEL_REPOSITORY_MAX_BYTES: '100' });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/above MODEL_REPOSITORY_MAX_BYTES \(100\)/);
    expect(readdirSync(run.dir)).toEqual([]);
  });

  it('fails on a tarball without <model>/config.yaml, an HTTP error, and bad settings, naming each', async () => {
    const noConfig = await fetchModels({ MODEL_REPOSITORY_URL: `${base}/no-config.tar.gz`, MODEL_REPOSITORY_SHA256: sha256(files.get('/no-config.tar.gz')!) });
    expect([noConfig.code, noConfig.stderr]).toEqual([1, expect.stringMatching(/holds no <model>\/config.yaml at its top level/)]);
    const missing = await fetchModels({ MODEL_REPOSITORY_URL: `${base}/nothing.tar.gz`, MODEL_REPOSITORY_SHA256: '0'.repeat(64) });
    expect([missing.code, missing.stderr]).toEqual([1, expect.stringMatching(/answered HTTP 404/)]);
    const noSum = await fetchModels({ MODEL_REPOSITORY_URL: `${base}/models.tar.gz` });
    expect([noSum.code, noSum.stderr]).toEqual([1, expect.stringMatching(/MODEL_REPOSITORY_SHA256 must be/)]);
    const file = await fetchModels({ MODEL_REPOSITORY_URL: 'file:///etc/passwd', MODEL_REPOSITORY_SHA256: '0'.repeat(64) });
    expect([file.code, file.stderr]).toEqual([1, expect.stringMatching(/must be http or https/)]);
  });
});
