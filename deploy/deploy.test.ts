// Static checks of the deployment files under deploy/: they are not run here (no Docker
// engine, no cluster), so this test parses them and checks what can be checked offline.
// The Kubernetes manifests and the Helm chart are rendered and schema-checked by
// kubernetes.test.ts and helm.test.ts.
//
//   npx vitest run deploy
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';

type Obj = Record<string, any>;

const deployDir = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(deployDir, '..');
const composeFile = join(deployDir, 'compose', 'compose.yaml');
const dockerDir = join(deployDir, 'docker');

// ---------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------

function walk(dir: string, skip: (name: string) => boolean = () => false): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    if (skip(e.name)) return [];
    const p = join(dir, e.name);
    return e.isDirectory() ? walk(p, skip) : [p];
  });
}

const rel = (p: string) => relative(repoRoot, p).split(sep).join('/');

function parseYamlFile(file: string) {
  // merge: true for compose's `<<: *anchor` keys (YAML 1.1 merge keys, which Compose supports).
  return Array.from(parseAllDocuments(readFileSync(file, 'utf8'), { merge: true }));
}

function loadYaml(file: string): Obj[] {
  return parseYamlFile(file)
    .map((d) => d.toJS({ maxAliasCount: 1000 }) as Obj | null)
    .filter((d): d is Obj => d !== null && d !== undefined);
}

// Helm templates are Go templates, not YAML: helm.test.ts renders and parses them.
const yamlFiles = walk(deployDir, (n) => n === 'node_modules')
  .filter((f) => /\.ya?ml$/.test(f))
  .filter((f) => !rel(f).startsWith('deploy/helm/infermesh/templates/'));

/** The infermesh image (CPU or GPU) runs our own services. */
const isInfermeshImage = (image: string) => /^(.*\/)?infermesh(-gpu)?:/.test(image);

/** `services/<name>/dist/main.js` named in a command, or undefined. */
const serviceEntry = (command: unknown): string | undefined =>
  (Array.isArray(command) ? command : []).find((a) => /^services\/[^/]+\/dist\/main\.js$/.test(String(a)));

/** An image reference is pinned when it has a tag other than latest, or a digest. */
function pinned(image: string): boolean {
  if (/@sha256:[0-9a-f]{64}$/.test(image)) return true;
  const lastSegment = image.split('/').pop()!;
  const tag = lastSegment.includes(':') ? lastSegment.split(':').pop()! : '';
  return tag !== '' && tag !== 'latest' && !tag.includes('$');
}

const compose = loadYaml(composeFile)[0]!;
const composeServices: Record<string, Obj> = compose.services ?? {};

// Dockerfile parsing: instructions with line continuations joined and comments dropped.
interface Instruction {
  keyword: string;
  args: string;
  stage: number;
}
function parseDockerfile(file: string): Instruction[] {
  const out: Instruction[] = [];
  let stage = -1;
  let buf = '';
  for (const raw of readFileSync(file, 'utf8').split('\n')) {
    const line = raw.trim();
    if (buf === '' && (line === '' || line.startsWith('#'))) continue;
    if (buf !== '' && line.startsWith('#')) continue; // comment inside a continuation
    if (line.endsWith('\\')) {
      buf += line.slice(0, -1) + ' ';
      continue;
    }
    const full = (buf + line).trim();
    buf = '';
    const m = /^(\S+)\s*(.*)$/s.exec(full);
    if (!m) continue;
    const keyword = m[1]!.toUpperCase();
    if (keyword === 'FROM') stage++;
    out.push({ keyword, args: m[2]!, stage });
  }
  return out;
}

interface Copy {
  from?: string;
  sources: string[];
  dest: string;
}
function copies(instructions: Instruction[]): Copy[] {
  return instructions
    .filter((i) => i.keyword === 'COPY' || i.keyword === 'ADD')
    .map((i) => {
      let rest = i.args.trim();
      let from: string | undefined;
      for (let m = /^--([a-z-]+)(?:=(\S+))?\s+/.exec(rest); m; m = /^--([a-z-]+)(?:=(\S+))?\s+/.exec(rest)) {
        if (m[1] === 'from') from = m[2];
        rest = rest.slice(m[0].length);
      }
      const parts: string[] = rest.startsWith('[') ? JSON.parse(rest) : rest.split(/\s+/);
      return { from, sources: parts.slice(0, -1), dest: parts[parts.length - 1]! };
    });
}

/** Paths produced by the build (never in a fresh checkout), excepted from existence checks. */
const isBuildOutput = (p: string) =>
  /(^|\/)(dist|node_modules|\.turbo|generated)(\/|$)/.test(p) || /\.onnx$/.test(p);

/** Minimal .dockerignore matcher: is `path` (or a parent directory of it) excluded? */
function dockerignored(patterns: string[], path: string): boolean {
  const toRegex = (pattern: string) =>
    new RegExp(
      '^' +
        pattern
          .replace(/^\/+|\/+$/g, '')
          .split(/(\*\*\/|\*\*|\*|\?)/)
          .map((tok) =>
            tok === '**/' ? '(?:.*/)?' : tok === '**' ? '.*' : tok === '*' ? '[^/]*' : tok === '?' ? '[^/]' : tok.replace(/[.+^${}()|[\]\\]/g, '\\$&'),
          )
          .join('') +
        '$',
    );
  const segments = path.replace(/^\.\//, '').replace(/\/+$/, '').split('/');
  const prefixes = segments.map((_, i) => segments.slice(0, i + 1).join('/'));
  let excluded = false;
  for (const line of patterns) {
    const negate = line.startsWith('!');
    const re = toRegex(negate ? line.slice(1) : line);
    if (prefixes.some((p) => re.test(p))) excluded = !negate;
  }
  return excluded;
}
const readIgnore = (file: string) =>
  readFileSync(file, 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));

const dockerfile = join(dockerDir, 'Dockerfile');
const dockerfileGpu = join(dockerDir, 'Dockerfile.gpu');
const dockerInstructions = parseDockerfile(dockerfile);
const buildStageCopies = copies(dockerInstructions).filter((c) => c.from === undefined);

// ---------------------------------------------------------------------------------------------
// YAML
// ---------------------------------------------------------------------------------------------

describe('YAML files under deploy/', () => {
  it('finds the compose file, the Kubernetes manifests and the chart', () => {
    expect(yamlFiles.map(rel)).toContain('deploy/compose/compose.yaml');
    expect(yamlFiles.map(rel)).toContain('deploy/kubernetes/base/kustomization.yaml');
    expect(yamlFiles.map(rel)).toContain('deploy/helm/infermesh/values.yaml');
    expect(yamlFiles.filter((f) => rel(f).startsWith('deploy/kubernetes/')).length).toBeGreaterThan(15);
  });

  it.each(yamlFiles.map((f) => [rel(f), f]))('%s parses without errors or warnings', (_name, file) => {
    const docs = parseYamlFile(file);
    expect(docs.length).toBeGreaterThan(0);
    for (const doc of docs) {
      expect(doc.errors.map((e) => e.message)).toEqual([]);
      expect(doc.warnings.map((e) => e.message)).toEqual([]);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Compose
// ---------------------------------------------------------------------------------------------

describe('compose.yaml', () => {
  const names = Object.keys(composeServices);

  it('defines nats, jaeger, router, preprocessor, worker and monitor', () => {
    expect(names).toEqual(expect.arrayContaining(['nats', 'jaeger', 'router', 'preprocessor', 'worker', 'monitor']));
  });

  it('has no unresolved merge keys', () => {
    for (const [name, svc] of Object.entries(composeServices)) {
      expect(Object.keys(svc), name).not.toContain('<<');
      expect(Object.keys(svc.environment ?? {}), name).not.toContain('<<');
    }
  });

  it('services depend only on defined services', () => {
    for (const [name, svc] of Object.entries(composeServices)) {
      const deps = Array.isArray(svc.depends_on) ? svc.depends_on : Object.keys(svc.depends_on ?? {});
      for (const dep of deps) expect(names, `${name} depends_on ${dep}`).toContain(dep);
      // A service_healthy dependency needs a healthcheck on the other side.
      for (const [dep, cond] of Object.entries<Obj>(Array.isArray(svc.depends_on) ? {} : (svc.depends_on ?? {}))) {
        if (cond.condition === 'service_healthy') expect(composeServices[dep]!.healthcheck, `${dep} healthcheck`).toBeDefined();
      }
    }
  });

  it('every image is pinned', () => {
    for (const [name, svc] of Object.entries(composeServices)) {
      expect(pinned(String(svc.image ?? '')), `${name}: image ${svc.image}`).toBe(true);
    }
  });

  it('builds the image from the repository root with deploy/docker/Dockerfile', () => {
    const built = Object.entries(composeServices).filter(([, s]) => s.build);
    expect(built.length).toBeGreaterThan(0);
    for (const [name, svc] of built) {
      const context = resolve(dirname(composeFile), svc.build.context);
      expect(context, name).toBe(repoRoot);
      expect(existsSync(join(context, svc.build.dockerfile)), `${name} dockerfile`).toBe(true);
    }
  });

  it('named volumes are declared and bind-mounted paths exist', () => {
    const declared = Object.keys(compose.volumes ?? {});
    for (const [name, svc] of Object.entries(composeServices)) {
      for (const v of svc.volumes ?? []) {
        const source = String(typeof v === 'string' ? v.split(':')[0] : v.source);
        if (source.startsWith('.') || source.startsWith('/')) {
          expect(existsSync(resolve(dirname(composeFile), source)), `${name} bind mount ${source}`).toBe(true);
        } else {
          expect(declared, `${name} volume ${source}`).toContain(source);
        }
      }
    }
  });

  it('infermesh services start an existing service and wire the shared settings', () => {
    const ours = Object.entries(composeServices).filter(([, s]) => isInfermeshImage(String(s.image)));
    expect(ours.map(([n]) => n)).toEqual(expect.arrayContaining(['router', 'preprocessor', 'worker', 'monitor']));
    for (const [name, svc] of ours) {
      const entry = serviceEntry(svc.command);
      expect(entry, `${name} command`).toBeDefined();
      expect(existsSync(join(repoRoot, entry!.split('/').slice(0, 2).join('/'), 'package.json'))).toBe(true);
      const env = svc.environment ?? {};
      expect(env.NATS_URL, name).toBe('nats://nats:4222');
      expect(new URL(env.OTEL_EXPORTER_OTLP_ENDPOINT).hostname).toBe('jaeger');
      expect(env.OTEL_SERVICE_NAME).toMatch(/^infermesh-/);
      expect(env.GRPC_MAX_MESSAGE_BYTES).toBe('67108864');
    }
    // Workers call the preprocessor for their models' images, the router for pipelines' glue
    // steps (OcrCrop; unset, the ocr pipeline answers UNAVAILABLE).
    const preprocessor = `preprocessor:${composeServices.preprocessor!.environment.PREPROCESSOR_PORT}`;
    for (const caller of ['worker', 'worker-gpu', 'router']) {
      expect(composeServices[caller]!.environment.PREPROCESSOR_ADDRESS, `${caller} PREPROCESSOR_ADDRESS`).toBe(preprocessor);
      expect(Object.keys(composeServices[caller]!.depends_on ?? {}), `${caller} starts with the preprocessor`).toContain('preprocessor');
    }
  });

  it("healthchecks probe the gRPC port each service listens on", () => {
    const portVar: Record<string, string> = {
      router: 'ROUTER_PORT',
      preprocessor: 'PREPROCESSOR_PORT',
      worker: 'WORKER_PORT',
      monitor: 'MONITOR_PORT',
    };
    for (const [name, svc] of Object.entries(composeServices).filter(([, s]) => isInfermeshImage(String(s.image)))) {
      const service = serviceEntry(svc.command)!.split('/')[1]!;
      const test: string[] = svc.healthcheck?.test;
      expect(test, `${name} healthcheck`).toBeDefined();
      const script = test.find((a) => a.endsWith('grpc-health-probe.mjs'))!;
      expect(script, `${name} uses the probe script`).toBeDefined();
      expect(existsSync(join(repoRoot, script))).toBe(true);
      expect(test[test.indexOf(script) + 1]).toBe(`127.0.0.1:${svc.environment[portVar[service]!]}`);
    }
  });

  it('publishes the router on 8001 (gRPC) and 8000 (REST), and monitor metrics on 8002', () => {
    const published = (svc: Obj) => (svc.ports ?? []).map((p: string) => p.split(':').slice(-2).join(':'));
    expect(published(composeServices.router!)).toContain('8001:8001');
    expect(published(composeServices.router!)).toContain(`8000:${composeServices.router!.environment.ROUTER_HTTP_PORT}`);
    expect(published(composeServices.monitor!)).toContain('8002:8002');
  });

  it('mounts the repository models/ read-only into the worker', () => {
    const worker = composeServices.worker!;
    const mount = (worker.volumes as string[]).find((v) => v.startsWith('../../models:'))!;
    expect(mount).toBeDefined();
    const [, target, mode] = mount.split(':');
    expect(mode).toBe('ro');
    expect(worker.environment.MODEL_REPOSITORY).toBe(target);
    expect(worker.environment.WORKER_ADVERTISE_HOST).toBe('worker');
  });

  it('runs NATS with JetStream on a volume', () => {
    const nats = composeServices.nats!;
    const args: string[] = [...(nats.entrypoint ?? []), ...(nats.command ?? [])];
    expect(args).toContain('-js');
    const storeDir = args[args.indexOf('-sd') + 1];
    expect((nats.volumes as string[]).some((v) => v.endsWith(`:${storeDir}`))).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------
// Dockerfile
// ---------------------------------------------------------------------------------------------

describe('Dockerfile', () => {
  it("COPY sources exist in the repository (build outputs excepted)", () => {
    expect(buildStageCopies.length).toBeGreaterThan(3);
    for (const copy of buildStageCopies) {
      for (const source of copy.sources.filter((s) => !isBuildOutput(s))) {
        expect(existsSync(join(repoRoot, source)), `COPY ${source}`).toBe(true);
      }
    }
  });

  it('copies every npm workspace that package-lock.json lists, so npm ci can run', () => {
    const lock = JSON.parse(readFileSync(join(repoRoot, 'package-lock.json'), 'utf8'));
    const workspaces = Object.keys(lock.packages ?? {}).filter((k) => k !== '' && !k.includes('node_modules/'));
    expect(workspaces.length).toBeGreaterThan(0);
    const sources = buildStageCopies.flatMap((c) => c.sources).map((s) => s.replace(/^\.\//, '').replace(/\/+$/, ''));
    for (const ws of workspaces) {
      expect(sources.some((s) => s === '.' || ws === s || ws.startsWith(`${s}/`)), `workspace ${ws}`).toBe(true);
    }
    for (const file of ['package.json', 'package-lock.json']) expect(sources).toContain(file);
  });

  it('installs with ONNXRUNTIME_NODE_INSTALL=skip, then runs npm ci, npm run build and prunes dev dependencies', () => {
    const env = dockerInstructions.filter((i) => i.keyword === 'ENV' && i.stage === 0).map((i) => i.args).join(' ');
    expect(env).toMatch(/ONNXRUNTIME_NODE_INSTALL=skip/);
    const runs = dockerInstructions.filter((i) => i.keyword === 'RUN').map((i) => i.args);
    const at = (re: RegExp) => runs.findIndex((r) => re.test(r));
    expect(at(/\bnpm ci\b/)).toBeGreaterThanOrEqual(0);
    expect(at(/\bnpm run build\b/)).toBeGreaterThan(at(/\bnpm ci\b/));
    expect(at(/\bnpm prune --omit=dev\b/)).toBeGreaterThan(at(/\bnpm run build\b/));
  });

  it('the runtime stage is node:24-bookworm-slim, runs as a numeric non-root user and defaults to a service', () => {
    const froms = dockerInstructions.filter((i) => i.keyword === 'FROM').map((i) => i.args);
    expect(froms.length).toBeGreaterThanOrEqual(2);
    const nodeImage = /ARG NODE_IMAGE=(\S+)/.exec(readFileSync(dockerfile, 'utf8'))?.[1];
    expect(nodeImage).toBe('node:24-bookworm-slim');
    const last = Math.max(...dockerInstructions.map((i) => i.stage));
    const user = dockerInstructions.filter((i) => i.keyword === 'USER' && i.stage === last).pop()?.args;
    expect(user).toMatch(/^[1-9]\d*(:\d+)?$/);
    expect(dockerInstructions.find((i) => i.keyword === 'WORKDIR' && i.stage === last)?.args).toBe('/app');
    const cmd = JSON.parse(dockerInstructions.filter((i) => i.keyword === 'CMD').pop()!.args);
    expect(cmd.slice(0, 3)).toEqual(['node', '--import', '@infermesh/telemetry/register']);
    expect(existsSync(join(repoRoot, serviceEntry(cmd)!.split('/').slice(0, 2).join('/')))).toBe(true);
  });

  it('copies the compose healthcheck script into the image', () => {
    expect(buildStageCopies.flatMap((c) => c.sources)).toContain('deploy/docker/grpc-health-probe.mjs');
  });

  it('the GPU variant needs an explicit CUDA base image and installs the CUDA provider', () => {
    const gpu = parseDockerfile(dockerfileGpu);
    expect(gpu.some((i) => i.keyword === 'ARG' && i.args === 'CUDA_RUNTIME_IMAGE')).toBe(true);
    expect(gpu.some((i) => i.keyword === 'RUN' && /ONNXRUNTIME_NODE_INSTALL=cuda12/.test(i.args))).toBe(true);
    // It copies only from its own stages, so it needs no build context.
    expect(copies(gpu).every((c) => c.from !== undefined)).toBe(true);
    expect(gpu.filter((i) => i.keyword === 'USER').pop()?.args).toMatch(/^[1-9]\d*(:\d+)?$/);
  });

  it('the dockerignore copies are identical, keep host node_modules and dist out, and exclude nothing the Dockerfile copies', () => {
    const shipped = readFileSync(join(dockerDir, 'dockerignore'), 'utf8');
    expect(readFileSync(join(dockerDir, 'Dockerfile.dockerignore'), 'utf8')).toBe(shipped);
    const patterns = readIgnore(join(dockerDir, 'dockerignore'));
    for (const p of ['node_modules', 'libs/log/node_modules', 'services/router/dist', 'libs/contracts/dist/index.js', '.git']) {
      expect(dockerignored(patterns, p), `${p} is excluded`).toBe(true);
    }
    const lock = JSON.parse(readFileSync(join(repoRoot, 'package-lock.json'), 'utf8'));
    const workspaceManifests = Object.keys(lock.packages)
      .filter((k) => k !== '' && !k.includes('node_modules/'))
      .map((ws) => `${ws}/package.json`);
    for (const source of [...buildStageCopies.flatMap((c) => c.sources), ...workspaceManifests]) {
      expect(dockerignored(patterns, source), `${source} is sent to the build`).toBe(false);
    }
    for (const proto of walk(join(repoRoot, 'proto')).map(rel)) {
      expect(dockerignored(patterns, proto), proto).toBe(false);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// grpc-health-probe.mjs against a real gRPC health server
// ---------------------------------------------------------------------------------------------

const requireFromRoot = createRequire(join(repoRoot, 'package.json'));
const canResolve = (m: string) => {
  try {
    requireFromRoot.resolve(m);
    return true;
  } catch {
    return false;
  }
};

describe.skipIf(!canResolve('@grpc/grpc-js') || !canResolve('grpc-health-check'))('grpc-health-probe.mjs', () => {
  const probe = join(dockerDir, 'grpc-health-probe.mjs');
  const run = async (...args: string[]): Promise<number> => {
    try {
      await promisify(execFile)(process.execPath, [probe, ...args], { cwd: repoRoot, timeout: 15_000 });
      return 0;
    } catch (err) {
      return (err as { code?: number }).code ?? -1;
    }
  };

  it('exits 0 only while the server reports SERVING', async () => {
    const grpc = requireFromRoot('@grpc/grpc-js') as typeof import('@grpc/grpc-js');
    const { HealthImplementation } = requireFromRoot('grpc-health-check') as typeof import('grpc-health-check');
    const health = new HealthImplementation({ '': 'SERVING', 'inference.GRPCInferenceService': 'NOT_SERVING' });
    const server = new grpc.Server();
    health.addToServer(server);
    const port = await new Promise<number>((ok, fail) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? fail(e) : ok(p))),
    );
    try {
      expect(await run(`127.0.0.1:${port}`)).toBe(0);
      expect(await run(`127.0.0.1:${port}`, 'inference.GRPCInferenceService')).toBe(1);
      expect(await run(`127.0.0.1:${port}`, 'no.such.Service')).toBe(1);
      health.setStatus('', 'NOT_SERVING');
      expect(await run(`127.0.0.1:${port}`)).toBe(1);
      health.setStatus('', 'SERVING');
      expect(await run(`127.0.0.1:${port}`)).toBe(0);
    } finally {
      server.forceShutdown();
    }
    // Nothing listening any more.
    expect(await run(`127.0.0.1:${port}`)).toBe(1);
  }, 60_000);
});
