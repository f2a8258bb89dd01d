// The Kubernetes manifests as a cluster would get them: each kustomization rendered with
// `kubectl kustomize`, every object validated against the Kubernetes and CRD schemas
// (kubernetes-models), then the mesh's own checks (mesh-checks.ts).
//
//   npx vitest run deploy
//
// Without kubectl the rendered checks are skipped, except under CI=true, where they fail.
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { meshChecks } from './mesh-checks.js';
import { envOf, hasTool, id, renderWith, schemaCount, schemaErrors, toolsRequired, type Obj } from './manifests.js';
import { fieldErrors } from './strict-fields.js';

const deployDir = dirname(fileURLToPath(import.meta.url));
const k8sDir = join(deployDir, 'kubernetes');
const NAMESPACE = 'infermesh';
const haveKubectl = hasTool('kubectl', ['version', '--client']);

/** The kustomizations a user applies (`kubectl apply -k deploy/kubernetes/<name>`). */
const kustomizations = ['base', 'overlays/gpu', 'overlays/production', 'overlays/production-gpu'] as const;

const renders = new Map<string, Obj[]>();
function kustomize(dir: string): Obj[] {
  let objects = renders.get(dir);
  if (!objects) {
    objects = renderWith('kubectl', ['kustomize', dir]);
    renders.set(dir, objects);
  }
  return objects;
}

/** Renders `resources` plus `components` from a scratch kustomization (paths relative to deploy/kubernetes). */
function kustomizeWith(resources: string[], components: string[]): Obj[] {
  const dir = mkdtempSync(join(tmpdir(), 'infermesh-kustomize-'));
  // kustomize takes relative roots only.
  const at = (p: string) => relative(dir, join(k8sDir, p));
  writeFileSync(
    join(dir, 'kustomization.yaml'),
    `resources:\n${resources.map((r) => `  - ${at(r)}\n`).join('')}components:\n${components.map((c) => `  - ${at(c)}\n`).join('')}`,
  );
  return kustomize(dir);
}

const find = (objects: Obj[], kind: string, name: string) => objects.find((o) => o.kind === kind && o.metadata?.name === name);
const yamlIn = (dir: string) => readdirSync(join(k8sDir, dir)).filter((f) => /\.ya?ml$/.test(f) && !/^kustomization\.ya?ml$/.test(f));
const kustomizationOf = (dir: string): Obj => parse(readFileSync(join(k8sDir, dir, 'kustomization.yaml'), 'utf8'));

describe('kustomize sources', () => {
  it('kubectl is installed (required under CI)', () => {
    if (toolsRequired) expect(haveKubectl, 'kubectl on PATH (.ci/run installs it)').toBe(true);
  });

  it('every manifest file is used by its kustomization or component, and everything listed exists', () => {
    const dirs = [...kustomizations, ...readdirSync(join(k8sDir, 'components')).map((c) => `components/${c}`)];
    for (const dir of dirs) {
      const k = kustomizationOf(dir);
      const used = [...(k.resources ?? []), ...(k.patches ?? []).map((p: Obj) => p.path), ...(k.components ?? [])].filter(Boolean) as string[];
      for (const entry of used) expect(existsSync(resolve(k8sDir, dir, entry)), `${dir}: ${entry}`).toBe(true);
      const unused = yamlIn(dir).filter((f) => !used.includes(f));
      expect(unused, `${dir}: files not in its kustomization.yaml`).toEqual([]);
      if (dir === 'base') expect(k.namespace).toBe(NAMESPACE);
    }
  });

  it('the schema validator knows the kinds used here and rejects a wrong field type', () => {
    expect(schemaCount()).toBeGreaterThan(200);
    const deployment = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'x' },
      spec: { selector: { matchLabels: { a: 'b' } }, template: { metadata: { labels: { a: 'b' } }, spec: { containers: [{ name: 'c', image: 'i:1' }] } } },
    };
    expect(schemaErrors(deployment)).toEqual([]);
    expect(schemaErrors({ ...deployment, spec: { ...deployment.spec, replicas: 'two' } }).join()).toMatch(/replicas must be integer/);
    expect(schemaErrors({ ...deployment, kind: 'Deploymnet' }).join()).toMatch(/no schema/);
    expect(schemaErrors({ apiVersion: 'keda.sh/v1alpha1', kind: 'ScaledObject', metadata: { name: 'x' }, spec: {} }).join()).toMatch(/scaleTargetRef/);
  });

  it('the field check reports an unknown field at any depth, and a kind it has no type for', () => {
    const misspelt = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'x' }, spec: { selector: {}, template: { spec: { containers: [{ name: 'c', imagee: 'i:1' }] } } } };
    const scaled = { apiVersion: 'keda.sh/v1alpha1', kind: 'ScaledObject', metadata: { name: 'x' }, spec: { scaleTargetRef: { name: 'w' }, triggers: [], maxReplicas: 3 } };
    const [deployment, scaledObject, unknown] = fieldErrors([misspelt, scaled, { apiVersion: 'example.com/v1', kind: 'Thing', metadata: { name: 'x' } }]);
    expect(deployment!.join()).toMatch(/"imagee".*does not exist in type 'IContainer'/);
    expect(scaledObject!.join()).toMatch(/"maxReplicas".*does not exist in type 'IScaledObjectSpec'/);
    expect(unknown).toEqual(['no type for apiVersion example.com/v1, kind Thing']);
  }, 60_000);
});

describe.skipIf(!haveKubectl && !toolsRequired).each(kustomizations)('kubectl kustomize deploy/kubernetes/%s', (name) => {
  meshChecks(() => kustomize(join(k8sDir, name)), {
    namespace: NAMESPACE,
    ownsNamespace: true,
    meshTls: true,
    inClusterNats: true,
    networkPolicies: true,
    alertRulesFile: join(deployDir, 'alerts', 'rules.example.yaml'),
  });

  const objects = () => kustomize(join(k8sDir, name));
  const gpu = name.includes('gpu');
  const production = name.includes('production');

  it(gpu ? 'runs CPU and GPU workers' : 'runs on a CPU-only cluster: no GPU worker, nothing requests nvidia.com/gpu', () => {
    expect(find(objects(), 'Deployment', 'worker-cpu')).toBeDefined();
    expect(find(objects(), 'Deployment', 'worker-gpu') !== undefined).toBe(gpu);
    if (!gpu) expect(JSON.stringify(objects())).not.toContain('nvidia.com/gpu');
  });

  it(production ? 'runs NATS as a 3-node JetStream cluster with routes, and the mesh creates 3 replicas' : 'runs one NATS server', () => {
    const nats = find(objects(), 'StatefulSet', 'nats')!;
    const data = find(objects(), 'ConfigMap', 'nats-config')!.data;
    const replicas = find(objects(), 'ConfigMap', 'infermesh-config')!.data.NATS_STREAM_REPLICAS;
    if (!production) {
      expect(nats.spec.replicas).toBe(1);
      expect(replicas).toBeUndefined();
      return;
    }
    expect(nats.spec.replicas).toBe(3);
    expect(nats.spec.podManagementPolicy).toBe('Parallel');
    expect(replicas).toBe('3');
    const container = nats.spec.template.spec.containers[0];
    const conf: string = data[container.args[container.args.indexOf('-c') + 1].split('/').pop()];
    expect(conf).toMatch(/include \.\/nats\.conf/);
    const routes = [...conf.matchAll(/nats-route:\/\/([^:"]+):(\d+)/g)].map((m) => `${m[1]}:${m[2]}`);
    expect(routes).toEqual([0, 1, 2].map((i) => `nats-${i}.${nats.spec.serviceName}.${NAMESPACE}.svc.cluster.local:6222`));
    expect(container.ports.find((p: Obj) => p.name === 'cluster')?.containerPort).toBe(6222);
    expect(find(objects(), 'Service', nats.spec.serviceName)!.spec.ports.map((p: Obj) => p.port)).toContain(6222);
    // Each server's certificate names its own route address.
    const tls = nats.spec.template.spec.volumes.find((v: Obj) => v.name === 'tls').csi.volumeAttributes;
    expect(tls['csi.cert-manager.io/dns-names']).toContain(`\${POD_NAME}.${nats.spec.serviceName}.${NAMESPACE}.svc.cluster.local`);
    expect(tls['csi.cert-manager.io/key-usages']).toContain('client auth');
    expect(find(objects(), 'PodDisruptionBudget', 'nats')?.spec.maxUnavailable).toBe(1);
  });

  it(production
    ? 'scales workers with KEDA on the queue depth and in-flight requests the monitor exports, scraped through a ServiceMonitor'
    : 'needs no CRD beyond cert-manager: no KEDA ScaledObject, no ServiceMonitor', () => {
    if (!production) {
      expect(objects().filter((o) => o.kind === 'ScaledObject' || o.kind === 'ServiceMonitor')).toEqual([]);
      return;
    }
    const scaled = objects().filter((o) => o.kind === 'ScaledObject');
    expect(scaled.map((s) => s.spec.scaleTargetRef.name).sort()).toEqual(gpu ? ['worker-cpu', 'worker-gpu'] : ['worker-cpu']);
    for (const s of scaled) {
      const target = find(objects(), 'Deployment', s.spec.scaleTargetRef.name)!;
      const trigger = s.spec.triggers[0];
      expect(trigger.type).toBe('prometheus');
      expect(trigger.metadata.query).toContain('infermesh_worker_queue_depth');
      expect(trigger.metadata.query).toContain('infermesh_worker_in_flight');
      // Worker ids are pod names: the query selects this Deployment's pods.
      expect(trigger.metadata.query).toContain(`worker=~"${target.metadata.name}-.+"`);
      expect(envOf(target.spec.template.spec.containers[0]).WORKER_ID.fieldRef.fieldPath).toBe('metadata.name');
      expect(s.spec.minReplicaCount).toBeGreaterThanOrEqual(1);
      // KEDA's HPA owns the count: a replicas field would reset it on every kubectl apply.
      expect(target.spec.replicas, `${target.metadata.name} replicas`).toBeUndefined();
    }
    const monitors = objects().filter((o) => o.kind === 'ServiceMonitor');
    expect(monitors.length).toBe(1);
    const service = find(objects(), 'Service', 'monitor')!;
    expect(monitors[0]!.spec.selector.matchLabels).toEqual(service.spec.selector);
    expect(Object.entries(monitors[0]!.spec.selector.matchLabels).every(([k, v]) => service.metadata.labels[k] === v)).toBe(true);
    const endpoint = monitors[0]!.spec.endpoints[0];
    expect(service.spec.ports.find((p: Obj) => p.name === endpoint.port)?.port).toBe(8002);
    expect(endpoint.path).toBe('/metrics');
  });
});

describe.skipIf(!haveKubectl && !toolsRequired)('components/models-from-url', () => {
  const objects = () => kustomizeWith(['overlays/production-gpu'], ['components/models-from-url']);

  it('every worker init container fetches the tarball with its checksum, and the result still validates', () => {
    const errors = objects().map((o) => ({ object: id(o), errors: schemaErrors(o) })).filter((e) => e.errors.length > 0);
    expect(errors).toEqual([]);
    expect(fieldErrors(objects()).flat()).toEqual([]);
    const source = find(objects(), 'ConfigMap', 'model-repository-source')!.data;
    expect(Object.keys(source)).toEqual(expect.arrayContaining(['MODEL_REPOSITORY_URL', 'MODEL_REPOSITORY_SHA256']));
    const workers = objects().filter((o) => o.kind === 'Deployment' && o.metadata.labels['app.kubernetes.io/component'] === 'worker');
    expect(workers.map((w) => w.metadata.name).sort()).toEqual(['worker-cpu', 'worker-gpu']);
    for (const w of workers) {
      const init = w.spec.template.spec.initContainers.find((c: Obj) => c.name === 'models');
      expect(init.command).toEqual(['node', 'deploy/docker/fetch-models.mjs']);
      expect(init.envFrom).toEqual([{ configMapRef: { name: 'model-repository-source' } }]);
      expect(init.image).toBe(w.spec.template.spec.containers[0].image);
      const dir = envOf(init).MODEL_REPOSITORY_DIR;
      expect(init.volumeMounts.find((m: Obj) => m.mountPath === dir)?.name).toBe('models');
    }
  }, 60_000);
});
