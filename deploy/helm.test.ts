// The Helm chart (deploy/helm/infermesh) as a cluster would get it: `helm lint`, then
// `helm template` with several sets of values, every object validated against the Kubernetes
// and CRD schemas (kubernetes-models), then the same mesh checks as the kustomize overlays.
//
//   npx vitest run deploy
//
// Without helm the rendered checks are skipped, except under CI=true, where they fail.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { meshChecks, type MeshExpectations } from './mesh-checks.js';
import { envOf, hasTool, renderWith, toolsRequired, type Obj } from './manifests.js';

const deployDir = dirname(fileURLToPath(import.meta.url));
const chart = join(deployDir, 'helm', 'infermesh');
const NAMESPACE = 'infermesh';
const haveHelm = hasTool('helm', ['version']);
const scratch = mkdtempSync(join(tmpdir(), 'infermesh-helm-'));
const sha = 'ab'.repeat(32);

interface Case {
  values: Obj;
  expected: Omit<MeshExpectations, 'namespace' | 'ownsNamespace' | 'alertRulesFile'>;
}

const cases: Record<string, Case> = {
  // The defaults: what deploy/kubernetes/base renders.
  'defaults (CPU workers, one NATS server, mutual TLS)': {
    values: {},
    expected: { meshTls: true, inClusterNats: true, networkPolicies: true },
  },
  // What deploy/kubernetes/overlays/production-gpu renders, plus the router's public TLS and keys.
  'production with GPUs (3-node NATS, KEDA, ServiceMonitor, models from a URL, public TLS, API keys)': {
    values: {
      workers: { gpu: { enabled: true, replicas: 2 } },
      nats: { replicas: 3 },
      autoscaling: { enabled: true },
      serviceMonitor: { enabled: true, labels: { release: 'kube-prometheus-stack' } },
      models: { source: 'url', url: 'https://models.example.com/m.tar.gz', sha256: sha },
      router: { publicTls: { secretName: 'router-tls', clientCaSecretName: 'router-client-ca' }, apiKeys: { secretName: 'router-api-keys' } },
      otlpEndpoint: 'http://otel-collector.observability:4318',
    },
    expected: { meshTls: true, inClusterNats: true, networkPolicies: true },
  },
  'your own NATS and ClusterIssuer, no NetworkPolicies': {
    values: {
      nats: { enabled: false, url: 'tls://nats.messaging.svc:4222', streamReplicas: 3 },
      meshTls: { issuer: { create: false, name: 'mesh-ca', kind: 'ClusterIssuer' } },
      networkPolicy: { enabled: false },
    },
    expected: { meshTls: true, inClusterNats: false, networkPolicies: false },
  },
  'plaintext (meshTls off: a trusted test cluster)': {
    values: { meshTls: { enabled: false } },
    expected: { meshTls: false, inClusterNats: true, networkPolicies: true },
  },
};

const renders = new Map<string, Obj[]>();
function template(name: string, values: Obj): Obj[] {
  let objects = renders.get(name);
  if (!objects) {
    const file = join(scratch, `${renders.size}.yaml`);
    writeFileSync(file, stringify(values));
    objects = renderWith('helm', ['template', 'infermesh', chart, '--namespace', NAMESPACE, '--values', file]);
    renders.set(name, objects);
  }
  return objects;
}

function helmFails(values: Obj): string {
  const file = join(scratch, `bad-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, stringify(values));
  const run = spawnSync('helm', ['template', 'infermesh', chart, '--namespace', NAMESPACE, '--values', file], { encoding: 'utf8', timeout: 60_000 });
  expect(run.status, `helm accepted ${JSON.stringify(values)}`).not.toBe(0);
  return run.stderr;
}

const find = (objects: Obj[], kind: string, name: string) => objects.find((o) => o.kind === kind && o.metadata?.name === name);

describe('helm chart', () => {
  it('helm is installed (required under CI)', () => {
    if (toolsRequired) expect(haveHelm, 'helm on PATH (.ci/run installs it)').toBe(true);
  });
});

describe.skipIf(!haveHelm && !toolsRequired)('helm lint deploy/helm/infermesh', () => {
  it('lints without errors or warnings', () => {
    const run = spawnSync('helm', ['lint', '--strict', chart], { encoding: 'utf8', timeout: 60_000 });
    expect(run.stdout + run.stderr).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
    expect(run.status).toBe(0);
  });

  it('refuses wrong values, naming them (values.schema.json and required settings)', () => {
    expect(helmFails({ workers: { cpu: { replicas: 'two' } } })).toMatch(/workers\/cpu\/replicas.*want integer/);
    expect(helmFails({ nats: { replicas: 2 } })).toMatch(/nats\/replicas/);
    expect(helmFails({ image: { tag: 'latest' } })).toMatch(/image\/tag/);
    expect(helmFails({ models: { source: 'url', url: 'https://x.example/m.tar.gz' } })).toMatch(/models.sha256 is required/);
    expect(helmFails({ models: { source: 'url', url: 'https://x.example/m.tar.gz', sha256: 'abc' } })).toMatch(/models\/sha256/);
    expect(helmFails({ nats: { enabled: false } })).toMatch(/nats.url is required/);
  });
});

describe.skipIf(!haveHelm && !toolsRequired).each(Object.entries(cases))('helm template: %s', (name, { values, expected }) => {
  const objects = () => template(name, values);
  meshChecks(objects, { ...expected, namespace: NAMESPACE, ownsNamespace: false, alertRulesFile: join(deployDir, 'alerts', 'rules.example.yaml') });

  it('follows its values: workers, NATS, streams, TLS, keys, autoscaling, ServiceMonitor', () => {
    const config = find(objects(), 'ConfigMap', 'infermesh-config')!.data;
    const gpu = values.workers?.gpu?.enabled === true;
    expect(find(objects(), 'Deployment', 'worker-gpu') !== undefined).toBe(gpu);
    if (!gpu) expect(JSON.stringify(objects())).not.toContain('nvidia.com/gpu');
    const natsReplicas = values.nats?.replicas ?? 1;
    if (values.nats?.enabled === false) {
      expect(find(objects(), 'StatefulSet', 'nats')).toBeUndefined();
      expect(config.NATS_URL).toBe(values.nats.url);
    } else {
      expect(find(objects(), 'StatefulSet', 'nats')!.spec.replicas).toBe(natsReplicas);
      expect(config.NATS_URL).toBe(`${expected.meshTls ? 'tls' : 'nats'}://nats:4222`);
    }
    expect(config.NATS_STREAM_REPLICAS).toBe(String(values.nats?.streamReplicas ?? natsReplicas));
    expect(config.OTEL_EXPORTER_OTLP_ENDPOINT).toBe(values.otlpEndpoint);
    const issuer = objects().find((o) => o.kind === 'Issuer');
    expect(issuer !== undefined).toBe(expected.meshTls && values.meshTls?.issuer?.create !== false);
    if (!expected.meshTls) expect(JSON.stringify(objects())).not.toContain('csi.cert-manager.io');

    const router = find(objects(), 'Deployment', 'router')!.spec.template.spec;
    const env = envOf(router.containers[0]);
    const mounted = (volume: string) => router.containers[0].volumeMounts.find((m: Obj) => m.name === volume)?.mountPath;
    const secretOf = (volume: string) => router.volumes.find((v: Obj) => v.name === volume)?.secret?.secretName;
    if (values.router?.publicTls) {
      expect(env.ROUTER_TLS_CERT_FILE).toBe(`${mounted('public-tls')}/tls.crt`);
      expect(env.ROUTER_TLS_KEY_FILE).toBe(`${mounted('public-tls')}/tls.key`);
      expect(env.ROUTER_TLS_CLIENT_CA_FILE).toBe(`${mounted('public-client-ca')}/ca.crt`);
      expect([secretOf('public-tls'), secretOf('public-client-ca')]).toEqual(['router-tls', 'router-client-ca']);
      expect(env.ROUTER_API_KEYS_FILE).toBe(`${mounted('api-keys')}/keys`);
      expect(secretOf('api-keys')).toBe('router-api-keys');
    } else {
      expect([env.ROUTER_TLS_CERT_FILE, env.ROUTER_API_KEYS_FILE]).toEqual([undefined, undefined]);
    }

    const scaled = objects().filter((o) => o.kind === 'ScaledObject');
    if (values.autoscaling?.enabled) {
      expect(scaled.map((s) => s.spec.scaleTargetRef.name).sort()).toEqual(gpu ? ['worker-cpu', 'worker-gpu'] : ['worker-cpu']);
      for (const s of scaled) {
        expect(s.spec.triggers[0].metadata.query).toContain(`worker=~"${s.spec.scaleTargetRef.name}-.+"`);
        // KEDA owns the replica count: the Deployment leaves it unset.
        expect(find(objects(), 'Deployment', s.spec.scaleTargetRef.name)!.spec.replicas).toBeUndefined();
      }
    } else {
      expect(scaled).toEqual([]);
    }
    const serviceMonitor = find(objects(), 'ServiceMonitor', 'monitor');
    expect(serviceMonitor !== undefined).toBe(values.serviceMonitor?.enabled === true);
    if (serviceMonitor) expect(serviceMonitor.metadata.labels.release).toBe('kube-prometheus-stack');

    const source = find(objects(), 'ConfigMap', 'model-repository-source');
    expect(source?.data).toEqual(values.models ? { MODEL_REPOSITORY_URL: values.models.url, MODEL_REPOSITORY_SHA256: sha, MODEL_REPOSITORY_MAX_BYTES: '3221225472' } : undefined);
    for (const w of objects().filter((o) => o.kind === 'Deployment' && o.metadata.name.startsWith('worker-'))) {
      const init = w.spec.template.spec.initContainers[0];
      expect(init.command[0], w.metadata.name).toBe(values.models ? 'node' : 'sh');
    }
  });
});
