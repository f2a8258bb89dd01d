#!/usr/bin/env node
// Fills a model repository from an object store: downloads the tarball at
// MODEL_REPOSITORY_URL, checks its SHA-256 against MODEL_REPOSITORY_SHA256, and unpacks it into
// MODEL_REPOSITORY_DIR (default /models). Run by the workers' init container in the Kubernetes
// component components/models-from-url, so that a worker needs no ReadWriteMany volume.
//
// The tarball holds the repository's layout at its top level: <model>/config.yaml and
// <model>/<version>/model.onnx (make one with `tar -czf models.tar.gz -C models iris text-direction`).
// Plain Node and the image's tar: no other binary is needed.
//
// Exit 0 once the repository holds at least one model; 1 with a message naming what was wrong.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const GiB = 1024 ** 3;

function fail(message) {
  console.error(`fetch-models: ${message}`);
  process.exit(1);
}

function settings(env) {
  const url = env.MODEL_REPOSITORY_URL ?? '';
  let parsed;
  try {
    parsed = new URL(url);
  } catch {
    fail(`MODEL_REPOSITORY_URL must be an http(s) URL, got ${JSON.stringify(url.slice(0, 200))}`);
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') fail(`MODEL_REPOSITORY_URL must be http or https, got ${parsed.protocol}`);
  const sha256 = (env.MODEL_REPOSITORY_SHA256 ?? '').toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(sha256)) fail('MODEL_REPOSITORY_SHA256 must be the tarball\'s SHA-256, 64 hex digits');
  const maxBytes = Number(env.MODEL_REPOSITORY_MAX_BYTES ?? 8 * GiB);
  if (!Number.isSafeInteger(maxBytes) || maxBytes <= 0) fail(`MODEL_REPOSITORY_MAX_BYTES must be a positive integer, got ${env.MODEL_REPOSITORY_MAX_BYTES}`);
  const timeoutMs = Number(env.MODEL_REPOSITORY_TIMEOUT_MS ?? 15 * 60_000);
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs <= 0) fail(`MODEL_REPOSITORY_TIMEOUT_MS must be a positive integer, got ${env.MODEL_REPOSITORY_TIMEOUT_MS}`);
  return { url: parsed, sha256, maxBytes, timeoutMs, dir: env.MODEL_REPOSITORY_DIR || '/models' };
}

/** Streams the body to `file`, hashing as it goes; stops past `maxBytes` before writing more. */
async function download({ url, maxBytes, timeoutMs }, file) {
  // The URL may carry a presigned query: log the host and path only.
  const shown = `${url.origin}${url.pathname}`;
  const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: 'follow' }).catch((error) =>
    fail(`cannot fetch ${shown}: ${error.message}`),
  );
  if (!response.ok) fail(`${shown} answered HTTP ${response.status}`);
  const declared = Number(response.headers.get('content-length') ?? NaN);
  if (declared > maxBytes) fail(`${shown} is ${declared} bytes, above MODEL_REPOSITORY_MAX_BYTES (${maxBytes})`);
  const hash = createHash('sha256');
  const out = createWriteStream(file);
  let bytes = 0;
  try {
    for await (const chunk of response.body) {
      bytes += chunk.length;
      if (bytes > maxBytes) fail(`${shown} sent more than MODEL_REPOSITORY_MAX_BYTES (${maxBytes}) bytes`);
      hash.update(chunk);
      if (!out.write(chunk)) await new Promise((resolve) => out.once('drain', resolve));
    }
  } catch (error) {
    fail(`download of ${shown} broke off after ${bytes} bytes: ${error.message}`);
  }
  await new Promise((resolve, reject) => out.end((error) => (error ? reject(error) : resolve())));
  return { bytes, sha256: hash.digest('hex'), shown };
}

async function main() {
  const config = settings(process.env);
  mkdirSync(config.dir, { recursive: true });
  const archive = join(config.dir, '.models.tar');
  const { bytes, sha256, shown } = await download(config, archive);
  if (sha256 !== config.sha256) {
    rmSync(archive, { force: true });
    fail(`${shown}: SHA-256 ${sha256} is not MODEL_REPOSITORY_SHA256 ${config.sha256}; nothing unpacked`);
  }
  // GNU tar detects the compression, strips leading "/" and refuses members with "..".
  const tar = spawnSync('tar', ['-xf', archive, '-C', config.dir, '--no-same-owner', '--no-same-permissions'], { encoding: 'utf8' });
  rmSync(archive, { force: true });
  if (tar.error) fail(`cannot run tar: ${tar.error.message}`);
  if (tar.status !== 0) fail(`tar could not unpack ${shown}: ${tar.stderr.trim().slice(0, 500)}`);
  const models = readdirSync(config.dir, { withFileTypes: true })
    .filter((e) => e.isDirectory() && existsSync(join(config.dir, e.name, 'config.yaml')))
    .map((e) => e.name);
  if (models.length === 0) fail(`${shown} holds no <model>/config.yaml at its top level`);
  console.log(`fetch-models: ${bytes} bytes from ${shown}, SHA-256 verified: ${models.sort().join(', ')}`);
}

await main();
