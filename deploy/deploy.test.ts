// Static checks of the deployment files under deploy/: they are not run here (no Docker
// engine, no cluster), so this test parses them and checks what can be checked offline.
//
//   npx vitest run deploy
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { natsServerBinary } from '@infermesh/testing';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';

type Obj = Record<string, any>;

const deployDir = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(deployDir, '..');
const k8sDir = join(deployDir, 'kubernetes');
const composeFile = join(deployDir, 'compose', 'compose.yaml');
const dockerDir = join(deployDir, 'docker');
const NAMESPACE = 'infermesh';

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

const yamlFiles = walk(deployDir, (n) => n === 'node_modules').filter((f) => /\.ya?ml$/.test(f));

const kustomization = loadYaml(join(k8sDir, 'kustomization.yaml'))[0]!;
const k8sFiles = walk(k8sDir)
  .filter((f) => /\.ya?ml$/.test(f))
  .filter((f) => !/(^|\/)kustomization\.ya?ml$/.test(f));
const k8sObjects: Array<Obj & { __file: string }> = k8sFiles.flatMap((f) =>
  loadYaml(f).map((o) => Object.assign(o, { __file: rel(f) })),
);

interface PodTemplate {
  owner: Obj;
  template: Obj; // { metadata, spec }
}

function podTemplates(objects: Obj[]): PodTemplate[] {
  return objects.flatMap((o): PodTemplate[] => {
    switch (o.kind) {
      case 'Deployment':
      case 'StatefulSet':
      case 'DaemonSet':
      case 'ReplicaSet':
      case 'Job':
        return [{ owner: o, template: o.spec?.template ?? {} }];
      case 'CronJob':
        return [{ owner: o, template: o.spec?.jobTemplate?.spec?.template ?? {} }];
      case 'Pod':
        return [{ owner: o, template: { metadata: o.metadata, spec: o.spec } }];
      default:
        return [];
    }
  });
}

const templates = podTemplates(k8sObjects);
const containersOf = (t: PodTemplate): Obj[] => [
  ...(t.template.spec?.initContainers ?? []),
  ...(t.template.spec?.containers ?? []),
];
const allContainers = templates.flatMap((t) => containersOf(t).map((c) => ({ t, c })));
const id = (o: Obj) => `${o.kind}/${o.metadata?.name}`;
const byKindName = (kind: string, name: string) =>
  k8sObjects.find((o) => o.kind === kind && o.metadata?.name === name);

const labelsMatch = (selector: Obj, labels: Obj) =>
  Object.entries(selector).every(([k, v]) => labels?.[k] === v);

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
  it('finds the compose file and the Kubernetes manifests', () => {
    expect(yamlFiles.map(rel)).toContain('deploy/compose/compose.yaml');
    expect(yamlFiles.map(rel)).toContain('deploy/kubernetes/kustomization.yaml');
    expect(k8sFiles.length).toBeGreaterThan(5);
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
// Kubernetes
// ---------------------------------------------------------------------------------------------

describe('Kubernetes manifests', () => {
  it('every object has apiVersion, kind and metadata.name', () => {
    expect(k8sObjects.length).toBeGreaterThan(10);
    for (const o of k8sObjects) {
      expect(typeof o.apiVersion, `${o.__file}: apiVersion`).toBe('string');
      expect(typeof o.kind, `${o.__file}: kind`).toBe('string');
      expect(typeof o.metadata?.name, `${o.__file} ${o.kind}: metadata.name`).toBe('string');
      expect(o.metadata.name).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    }
  });

  it('object names are unique per kind', () => {
    const ids = k8sObjects.map(id);
    expect(ids.filter((x, i) => ids.indexOf(x) !== i)).toEqual([]);
  });

  it('every namespaced object is in the infermesh namespace, which is defined', () => {
    expect(byKindName('Namespace', NAMESPACE)).toBeDefined();
    expect(kustomization.namespace).toBe(NAMESPACE);
    for (const o of k8sObjects.filter((x) => x.kind !== 'Namespace')) {
      expect(o.metadata.namespace, `${id(o)} namespace`).toBe(NAMESPACE);
    }
  });

  it('every file listed in kustomization.yaml resources exists, and every manifest is listed', () => {
    const resources: string[] = kustomization.resources ?? [];
    expect(resources.length).toBeGreaterThan(0);
    for (const r of resources) {
      expect(existsSync(join(k8sDir, r)), `kustomization resource ${r}`).toBe(true);
    }
    const listed = new Set(resources.map((r) => resolve(k8sDir, r)));
    const unlisted = k8sFiles.filter((f) => !listed.has(f)).map(rel);
    expect(unlisted).toEqual([]);
  });

  it('every container image is pinned (a tag other than latest, or a digest)', () => {
    expect(allContainers.length).toBeGreaterThan(5);
    for (const { t, c } of allContainers) {
      expect(pinned(String(c.image ?? '')), `${id(t.owner)} container ${c.name}: image ${c.image}`).toBe(true);
    }
    // kustomize image overrides must not unpin them either.
    for (const img of kustomization.images ?? []) {
      if (img.newTag !== undefined) expect(img.newTag).not.toBe('latest');
    }
  });

  it('every infermesh container starts an existing service and declares its gRPC port', () => {
    const ours = allContainers.filter(({ c }) => isInfermeshImage(String(c.image)));
    expect(ours.length).toBeGreaterThanOrEqual(5);
    for (const { t, c } of ours) {
      const entry = serviceEntry(c.command);
      expect(entry, `${id(t.owner)} command ${JSON.stringify(c.command)}`).toBeDefined();
      expect(c.command.slice(0, 3)).toEqual(['node', '--import', '@infermesh/telemetry/register']);
      expect(existsSync(join(repoRoot, entry!.split('/').slice(0, 2).join('/'), 'package.json')), entry).toBe(true);
      expect((c.ports ?? []).some((p: Obj) => p.name === 'grpc'), `${id(t.owner)} has a port named grpc`).toBe(true);
    }
  });

  it('every container that serves gRPC has gRPC liveness and readiness probes on its plaintext health port', () => {
    // The "grpc" ports run mutual TLS, which kubelet's gRPC probes do not speak: each service
    // also serves grpc.health.v1 alone on GRPC_HEALTH_PORT (port "health"). Jaeger's OTLP port
    // "otlp-grpc" is gRPC too but has no health service; Jaeger is probed over HTTP.
    const grpcContainers = allContainers.filter(({ c }) => (c.ports ?? []).some((p: Obj) => p.name === 'grpc'));
    expect(grpcContainers.length).toBeGreaterThanOrEqual(5);
    for (const { t, c } of grpcContainers) {
      const port = c.ports.find((p: Obj) => p.name === 'health')?.containerPort;
      const env = Object.fromEntries((c.env ?? []).map((e: Obj) => [e.name, e.value]));
      expect(env.GRPC_HEALTH_PORT, `${id(t.owner)} GRPC_HEALTH_PORT`).toBe(String(port));
      for (const probe of ['livenessProbe', 'readinessProbe'] as const) {
        expect(c[probe]?.grpc?.port, `${id(t.owner)} ${c.name} ${probe}.grpc.port`).toBe(port);
      }
      if (c.startupProbe) expect(c.startupProbe.grpc?.port).toBe(port);
    }
  });

  it("each service's listen port setting matches its container port", () => {
    const portVars: Record<string, string> = {
      router: 'ROUTER_PORT',
      preprocessor: 'PREPROCESSOR_PORT',
      worker: 'WORKER_PORT',
      monitor: 'MONITOR_PORT',
    };
    for (const { t, c } of allContainers.filter(({ c }) => isInfermeshImage(String(c.image)))) {
      const service = serviceEntry(c.command)!.split('/')[1]!;
      const env = Object.fromEntries((c.env ?? []).map((e: Obj) => [e.name, e.value]));
      const grpcPort = c.ports.find((p: Obj) => p.name === 'grpc').containerPort;
      expect(env[portVars[service]!], `${id(t.owner)} ${portVars[service]}`).toBe(String(grpcPort));
      if (service === 'monitor') {
        expect(env.MONITOR_METRICS_PORT).toBe(String(c.ports.find((p: Obj) => p.name === 'metrics').containerPort));
      }
    }
  });

  it('every Service selector matches the pod template labels of a Deployment or StatefulSet, and its target ports exist there', () => {
    const services = k8sObjects.filter((o) => o.kind === 'Service');
    expect(services.length).toBeGreaterThanOrEqual(5);
    for (const svc of services) {
      const selector: Obj = svc.spec?.selector ?? {};
      expect(Object.keys(selector).length, `${id(svc)} has a selector`).toBeGreaterThan(0);
      const matched = templates.filter(
        (t) =>
          ['Deployment', 'StatefulSet'].includes(t.owner.kind) &&
          t.owner.metadata.namespace === svc.metadata.namespace &&
          labelsMatch(selector, t.template.metadata?.labels ?? {}),
      );
      expect(matched.map((t) => id(t.owner)), `${id(svc)} selector ${JSON.stringify(selector)}`).not.toEqual([]);
      for (const port of svc.spec.ports ?? []) {
        const target = port.targetPort ?? port.port;
        const found = matched.some((t) =>
          containersOf(t).some((c) =>
            (c.ports ?? []).some((cp: Obj) => (typeof target === 'string' ? cp.name === target : cp.containerPort === target)),
          ),
        );
        expect(found, `${id(svc)} port ${port.name} -> targetPort ${target}`).toBe(true);
      }
    }
  });

  it('Deployment and StatefulSet selectors match their own pod template labels', () => {
    for (const t of templates.filter((x) => ['Deployment', 'StatefulSet'].includes(x.owner.kind))) {
      const selector = t.owner.spec?.selector?.matchLabels ?? {};
      expect(Object.keys(selector).length).toBeGreaterThan(0);
      expect(labelsMatch(selector, t.template.metadata?.labels ?? {}), id(t.owner)).toBe(true);
    }
  });

  it('the router runs two replicas guarded by a PodDisruptionBudget that selects them', () => {
    const router = byKindName('Deployment', 'router')!;
    expect(router.spec.replicas).toBe(2);
    const pdbs = k8sObjects.filter((o) => o.kind === 'PodDisruptionBudget');
    const routerPdb = pdbs.find((p) => labelsMatch(p.spec.selector.matchLabels, router.spec.template.metadata.labels));
    expect(routerPdb, 'a PDB selecting the router pods').toBeDefined();
    expect(routerPdb!.spec.minAvailable ?? 0).toBeGreaterThanOrEqual(1);
    expect(routerPdb!.spec.minAvailable).toBeLessThan(router.spec.replicas);
    expect(byKindName('Service', 'router')!.spec.ports[0].port).toBe(8001);
  });

  it('the worker-gpu Deployment requests one nvidia.com/gpu per pod and uses the CUDA provider', () => {
    const gpu = byKindName('Deployment', 'worker-gpu');
    expect(gpu).toBeDefined();
    const c = gpu!.spec.template.spec.containers[0];
    expect(c.resources.limits['nvidia.com/gpu']).toBe(1);
    if (c.resources.requests?.['nvidia.com/gpu'] !== undefined) {
      expect(c.resources.requests['nvidia.com/gpu']).toBe(c.resources.limits['nvidia.com/gpu']);
    }
    const env = Object.fromEntries(c.env.map((e: Obj) => [e.name, e.value ?? e.valueFrom]));
    expect(env.WORKER_EXECUTION_PROVIDERS).toBe('cuda,cpu');
    expect(env.WORKER_DEVICE).toBe('gpu0');
    const cpu = byKindName('Deployment', 'worker-cpu');
    expect(cpu, 'a CPU worker Deployment').toBeDefined();
    expect(cpu!.spec.template.spec.containers[0].resources.limits['nvidia.com/gpu']).toBeUndefined();
  });

  it('workers advertise their pod IP, reach the preprocessor and load models from a read-only volume', () => {
    for (const name of ['worker-gpu', 'worker-cpu']) {
      const spec = byKindName('Deployment', name)!.spec.template.spec;
      const c = spec.containers[0];
      const env = Object.fromEntries(c.env.map((e: Obj) => [e.name, e]));
      expect(env.WORKER_ADVERTISE_HOST.valueFrom.fieldRef.fieldPath, name).toBe('status.podIP');
      expect(env.WORKER_HOST.value).toBe('0.0.0.0');
      // Workers send their models' images to the preprocessor's Service.
      expect(env.PREPROCESSOR_ADDRESS.value, name).toBe('preprocessor:8003');
      const repo = env.MODEL_REPOSITORY.value;
      const mount = c.volumeMounts.find((m: Obj) => m.mountPath === repo);
      expect(mount, `${name} mounts ${repo}`).toBeDefined();
      expect(mount.readOnly).toBe(true);
      const volume = spec.volumes.find((v: Obj) => v.name === mount.name);
      const claim = volume.persistentVolumeClaim?.claimName;
      const configMap = volume.configMap?.name;
      expect(claim ?? configMap, `${name} models volume source`).toBeDefined();
      if (claim) expect(byKindName('PersistentVolumeClaim', claim), `PVC ${claim}`).toBeDefined();
      if (configMap) expect(byKindName('ConfigMap', configMap), `ConfigMap ${configMap}`).toBeDefined();
    }
  });

  it('referenced ConfigMaps exist', () => {
    for (const { t, c } of allContainers) {
      for (const ref of c.envFrom ?? []) {
        if (ref.configMapRef) expect(byKindName('ConfigMap', ref.configMapRef.name), `${id(t.owner)} envFrom`).toBeDefined();
      }
    }
    const config = byKindName('ConfigMap', 'infermesh-config')!;
    expect(Object.keys(config.data)).toEqual(
      expect.arrayContaining(['NATS_URL', 'NATS_SUBJECT_PREFIX', 'LOG_LEVEL', 'OTEL_EXPORTER_OTLP_ENDPOINT', 'GRPC_MAX_MESSAGE_BYTES']),
    );
    // Both in-cluster addresses point at Services defined here.
    expect(byKindName('Service', new URL(config.data.NATS_URL).hostname)).toBeDefined();
    expect(byKindName('Service', new URL(config.data.OTEL_EXPORTER_OTLP_ENDPOINT).hostname)).toBeDefined();
  });

  it('NATS runs JetStream on a persistent volume', () => {
    const nats = byKindName('StatefulSet', 'nats')!;
    const c = nats.spec.template.spec.containers[0];
    const args: string[] = c.args;
    expect(args).toContain('-js');
    const storeDir = args[args.indexOf('-sd') + 1];
    const mount = c.volumeMounts.find((m: Obj) => m.mountPath === storeDir);
    expect(mount).toBeDefined();
    expect(nats.spec.volumeClaimTemplates.map((v: Obj) => v.metadata.name)).toContain(mount.name);
  });

  it('the monitor reads its alert rules from ConfigMap monitor-alerts, a copy of deploy/alerts/rules.example.yaml', () => {
    const rules: string = byKindName('ConfigMap', 'monitor-alerts')!.data['rules.yaml'];
    expect(rules).toBe(readFileSync(join(deployDir, 'alerts', 'rules.example.yaml'), 'utf8'));
    const pod = byKindName('Deployment', 'monitor')!.spec.template.spec;
    const container = pod.containers[0];
    const mount = container.volumeMounts.find((m: Obj) => m.name === 'alerts');
    const rulesFile = container.env.find((e: Obj) => e.name === 'MONITOR_ALERT_RULES_FILE');
    expect(rulesFile?.value).toBe(`${mount.mountPath}/rules.yaml`);
    expect(pod.volumes.find((v: Obj) => v.name === 'alerts').configMap.name).toBe('monitor-alerts');
  });

  it('Jaeger exposes OTLP gRPC 4317, OTLP HTTP 4318 and the UI on 16686', () => {
    const ports = byKindName('Service', 'jaeger')!.spec.ports.map((p: Obj) => p.port);
    expect(ports).toEqual(expect.arrayContaining([4317, 4318, 16686]));
  });

  it('the monitor serves gRPC on 8004 and metrics on 8002 with prometheus.io scrape annotations', () => {
    const svc = byKindName('Service', 'monitor')!;
    expect(svc.spec.ports.map((p: Obj) => p.port)).toEqual(expect.arrayContaining([8004, 8002]));
    const pod = byKindName('Deployment', 'monitor')!.spec.template.metadata;
    for (const annotations of [svc.metadata.annotations, pod.annotations]) {
      expect(annotations['prometheus.io/scrape']).toBe('true');
      expect(annotations['prometheus.io/port']).toBe('8002');
      expect(annotations['prometheus.io/path']).toBe('/metrics');
    }
  });

  it('every pod runs as non-root with the restricted security settings', () => {
    for (const t of templates) {
      const pod = t.template.spec;
      expect(pod.hostNetwork ?? false).toBe(false);
      expect(pod.securityContext?.seccompProfile?.type, `${id(t.owner)} seccompProfile`).toBe('RuntimeDefault');
      expect((pod.volumes ?? []).filter((v: Obj) => v.hostPath)).toEqual([]);
      for (const c of containersOf(t)) {
        const where = `${id(t.owner)} container ${c.name}`;
        const runAsNonRoot = c.securityContext?.runAsNonRoot ?? pod.securityContext?.runAsNonRoot;
        expect(runAsNonRoot, `${where} runAsNonRoot`).toBe(true);
        const uid = c.securityContext?.runAsUser ?? pod.securityContext?.runAsUser;
        if (uid !== undefined) expect(uid, `${where} runAsUser`).toBeGreaterThan(0);
        expect(c.securityContext?.allowPrivilegeEscalation, `${where} allowPrivilegeEscalation`).toBe(false);
        expect(c.securityContext?.privileged ?? false).toBe(false);
        expect(c.securityContext?.capabilities?.drop, `${where} drops capabilities`).toContain('ALL');
      }
    }
  });

  it('every container has CPU and memory requests and limits', () => {
    for (const { t, c } of allContainers) {
      for (const kind of ['requests', 'limits'] as const) {
        for (const resource of ['cpu', 'memory']) {
          expect(c.resources?.[kind]?.[resource], `${id(t.owner)} ${c.name} ${kind}.${resource}`).toBeDefined();
        }
      }
    }
  });

  it('infermesh pods get at least 30 s to drain on SIGTERM, workers 60 s', () => {
    for (const t of templates.filter((x) => containersOf(x).some((c) => isInfermeshImage(String(c.image))))) {
      const grace = t.template.spec.terminationGracePeriodSeconds;
      expect(grace, `${id(t.owner)} terminationGracePeriodSeconds`).toBeGreaterThanOrEqual(30);
      if (t.owner.metadata.name.startsWith('worker')) expect(grace).toBeGreaterThanOrEqual(60);
    }
  });

  it('pods disable service links, whose <SERVICE>_PORT variables would clash with ROUTER_PORT and the like', () => {
    // A Service named "router" injects ROUTER_PORT=tcp://10.x.y.z:8001 into every pod of the
    // namespace when service links are on.
    for (const t of templates) {
      expect(t.template.spec.enableServiceLinks, id(t.owner)).toBe(false);
    }
  });

  it.skipIf(!hasKubectl())('kubectl kustomize renders every manifest into the infermesh namespace', () => {
    const rendered = Array.from(parseAllDocuments(execFileSync('kubectl', ['kustomize', k8sDir], { encoding: 'utf8' })))
      .map((d) => d.toJS() as Obj)
      .filter(Boolean);
    expect(rendered.map(id).sort()).toEqual(k8sObjects.map(id).sort());
    for (const o of rendered.filter((x) => x.kind !== 'Namespace')) expect(o.metadata.namespace).toBe(NAMESPACE);
  });
});

describe('Kubernetes security', () => {
  const ours = allContainers.filter(({ c }) => isInfermeshImage(String(c.image)));
  const envOf = (c: Obj) => Object.fromEntries((c.env ?? []).map((e: Obj) => [e.name, e.value ?? e.valueFrom]));
  const roleOf = (c: Obj) => serviceEntry(c.command)!.split('/')[1]!;
  const volumeOf = (t: PodTemplate, name: string): Obj | undefined => (t.template.spec.volumes ?? []).find((v: Obj) => v.name === name);
  const mountOf = (c: Obj, name: string): Obj | undefined => (c.volumeMounts ?? []).find((m: Obj) => m.name === name);
  const natsUsers = ['worker', 'router', 'monitor', 'operator'] as const;

  it('every infermesh service runs mutual TLS with a certificate from the mesh issuer that names its role', () => {
    expect(byKindName('Issuer', 'infermesh-ca')?.spec?.ca?.secretName).toBe('infermesh-ca');
    expect(ours.length).toBeGreaterThanOrEqual(5);
    for (const { t, c } of ours) {
      const env = envOf(c);
      const tls = volumeOf(t, 'tls');
      const at = mountOf(c, 'tls')?.mountPath;
      expect(at, `${id(t.owner)} mounts tls`).toBeDefined();
      expect([env.MESH_TLS_CA_FILE, env.MESH_TLS_CERT_FILE, env.MESH_TLS_KEY_FILE]).toEqual([`${at}/ca.crt`, `${at}/tls.crt`, `${at}/tls.key`]);
      expect(tls?.csi?.driver, id(t.owner)).toBe('csi.cert-manager.io');
      const attributes = tls!.csi.volumeAttributes;
      expect(attributes['csi.cert-manager.io/issuer-name']).toBe('infermesh-ca');
      expect(attributes['csi.cert-manager.io/key-usages']).toMatch(/server auth,client auth/);
      const role = roleOf(c);
      // A worker's name is its pod's: the worker id it announces (WORKER_ID from metadata.name).
      const name = role === 'worker' ? '${POD_NAME}' : role;
      expect(attributes['csi.cert-manager.io/uri-sans'], id(t.owner)).toBe(`spiffe://infermesh/${role}/${name}`);
      if (role === 'worker') expect(env.WORKER_ID?.fieldRef?.fieldPath).toBe('metadata.name');
    }
  });

  it('services that use NATS connect over TLS as their own user, with the password from the Secret as a file', () => {
    const config = byKindName('ConfigMap', 'infermesh-config')!.data;
    expect(config.NATS_URL).toMatch(/^tls:\/\//);
    for (const { t, c } of ours.filter(({ c }) => roleOf(c) !== 'preprocessor')) {
      const env = envOf(c);
      const role = roleOf(c);
      expect(env.NATS_USER, id(t.owner)).toBe(role);
      const secret = volumeOf(t, 'nats-password')?.secret;
      expect(secret?.secretName).toBe('infermesh-nats-users');
      expect(secret?.items).toEqual([{ key: role, path: 'password' }]);
      expect(env.NATS_PASSWORD_FILE).toBe(`${mountOf(c, 'nats-password')?.mountPath}/password`);
      expect(config.NATS_TLS_CA_FILE).toBe(env.MESH_TLS_CA_FILE);
    }
  });

  it("the NATS server's users and permissions are the mesh's own (natsAuthorization), with every password from the Secret", async () => {
    const { natsAuthorization } = await import('@infermesh/contracts');
    const conf: string = byKindName('ConfigMap', 'nats-config')!.data['nats.conf'];
    const expected = natsAuthorization(natsUsers.map((role) => ({ user: role, password: { env: `${role.toUpperCase()}_PASSWORD` }, role })), 'infermesh');
    expect(conf.startsWith(expected)).toBe(true);
    expect(conf).toMatch(/tls \{[^}]*ca_file/);
    const nats = templates.find((t) => t.owner.metadata.name === 'nats')!;
    const container = nats.template.spec.containers[0];
    expect(container.args.slice(0, 2)).toEqual(['-c', '/etc/nats/nats.conf']);
    for (const role of natsUsers) {
      expect(envOf(container)[`${role.toUpperCase()}_PASSWORD`]?.secretKeyRef, role).toEqual({ name: 'infermesh-nats-users', key: role });
    }
  });

  it('nats-server accepts the config, and refuses it when a password is missing', () => {
    const dir = mkdtempSync(join(tmpdir(), 'infermesh-nats-conf-'));
    const file = join(dir, 'nats.conf');
    // Without the tls block, whose files exist only in the pod.
    writeFileSync(file, (byKindName('ConfigMap', 'nats-config')!.data['nats.conf'] as string).replace(/tls \{[^}]*\}\s*/, ''));
    const passwords = Object.fromEntries(natsUsers.map((role) => [`${role.toUpperCase()}_PASSWORD`, 'x']));
    const test = (env: Record<string, string>) => spawnSync(natsServerBinary(), ['-c', file, '-t'], { env: { ...process.env, ...env }, encoding: 'utf8' });
    expect(test(passwords).status).toBe(0);
    const { MONITOR_PASSWORD: _left, ...others } = passwords;
    const missing = test(others);
    expect(missing.stderr).toMatch(/MONITOR_PASSWORD/);
    expect(missing.status).not.toBe(0);
  });

  it('NetworkPolicy: nothing reaches a pod unless allowed; workers only from routers, the preprocessor only from workers, NATS only from the mesh', () => {
    const policies = k8sObjects.filter((o) => o.kind === 'NetworkPolicy');
    const denyAll = policies.find((p) => Object.keys(p.spec.podSelector ?? {}).length === 0);
    expect(denyAll?.spec.policyTypes).toEqual(['Ingress']);
    expect(denyAll?.spec.ingress ?? []).toEqual([]);
    const policyFor = (name: string) => policies.find((p) => p.spec.podSelector?.matchLabels?.['app.kubernetes.io/name'] === name)!;
    const sourcesOf = (name: string, port: number) =>
      policyFor(name).spec.ingress.filter((rule: Obj) => rule.ports.some((p: Obj) => p.port === port)).map((rule: Obj) => rule.from ?? 'anywhere');
    for (const t of templates) {
      const name = t.template.metadata.labels['app.kubernetes.io/name'];
      expect(policyFor(name), `a policy selects ${name}`).toBeDefined();
    }
    expect(sourcesOf('worker', 8005)).toEqual([[{ podSelector: { matchLabels: { 'app.kubernetes.io/name': 'router' } } }]]);
    expect(sourcesOf('preprocessor', 8003)).toEqual([[{ podSelector: { matchLabels: { 'app.kubernetes.io/name': 'worker' } } }]]);
    expect(sourcesOf('router', 8001)).toEqual(['anywhere']);
    const natsFrom = sourcesOf('nats', 4222)[0];
    expect(natsFrom[0].podSelector.matchExpressions[0].values.sort()).toEqual(['monitor', 'router', 'worker']);
    // Every container port an infermesh pod listens on is allowed by some rule (or probes would fail too).
    for (const { t, c } of ours) {
      const name = t.template.metadata.labels['app.kubernetes.io/name'];
      for (const port of c.ports ?? []) expect(sourcesOf(name, port.containerPort).length, `${name}:${port.containerPort}`).toBeGreaterThan(0);
    }
  });
});

function hasKubectl(): boolean {
  try {
    execFileSync('kubectl', ['version', '--client'], { stdio: 'ignore', timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

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
    // The worker calls the preprocessor; the router never does.
    expect(composeServices.worker!.environment.PREPROCESSOR_ADDRESS).toBe(
      `preprocessor:${composeServices.preprocessor!.environment.PREPROCESSOR_PORT}`,
    );
    expect(composeServices.router!.environment.PREPROCESSOR_ADDRESS).toBeUndefined();
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

  it('publishes the router on 8001 and monitor metrics on 8002', () => {
    const published = (svc: Obj) => (svc.ports ?? []).map((p: string) => p.split(':').slice(-2).join(':'));
    expect(published(composeServices.router!)).toContain('8001:8001');
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
