// The checks every rendering of the mesh must pass, whoever rendered it (kubectl kustomize of
// an overlay, helm template of the chart): schemas, then what the schemas cannot know: our own
// services' ports, probes, identities, NATS users, security settings and network policies.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { natsServerBinary } from '@infermesh/testing';
import { PREPROCESSOR_CALLERS } from '@infermesh/preprocessor';
import {
  envOf, id, isInfermeshImage, labelsMatch, pinned, podTemplates, schemaErrors, serviceEntry,
  type Obj, type PodTemplate,
} from './manifests.js';
import { fieldErrors } from './strict-fields.js';

export interface MeshExpectations {
  namespace: string;
  /** The rendering creates its Namespace object (kustomize) rather than installing into one (helm). */
  ownsNamespace: boolean;
  /** Services run mutual TLS with per-pod certificates from cert-manager's csi-driver. */
  meshTls: boolean;
  /** NATS runs in the rendering (StatefulSet nats with ConfigMap nats-config). */
  inClusterNats: boolean;
  /** NetworkPolicies are part of the rendering. */
  networkPolicies: boolean;
  /** The monitor's alert rules must equal this file. */
  alertRulesFile: string;
}

const portVars: Record<string, string> = {
  router: 'ROUTER_PORT',
  preprocessor: 'PREPROCESSOR_PORT',
  worker: 'WORKER_PORT',
  monitor: 'MONITOR_PORT',
};
const natsUsers = ['worker', 'router', 'monitor', 'operator'] as const;
/** Where the preprocessor names the roles that may call it. */

/** Defines the checks (vitest `it`s) for the objects `load` renders; call inside a describe. */
export function meshChecks(load: () => Obj[], expected: MeshExpectations): void {
  const objects = () => load();
  const templates = () => podTemplates(objects());
  const byKindName = (kind: string, name: string) => objects().find((o) => o.kind === kind && o.metadata?.name === name);
  /** Main containers (init containers excepted). */
  const containers = () => templates().flatMap((t) => (t.template.spec?.containers ?? []).map((c: Obj) => ({ t, c })));
  const allContainers = () =>
    templates().flatMap((t) => [...(t.template.spec?.initContainers ?? []), ...(t.template.spec?.containers ?? [])].map((c: Obj) => ({ t, c })));
  const ours = () => containers().filter(({ c }) => isInfermeshImage(String(c.image)));
  const roleOf = (c: Obj) => serviceEntry(c.command)!.split('/')[1]!;
  const volumeOf = (t: PodTemplate, name: string): Obj | undefined => (t.template.spec.volumes ?? []).find((v: Obj) => v.name === name);
  const mountOf = (c: Obj, name: string): Obj | undefined => (c.volumeMounts ?? []).find((m: Obj) => m.name === name);

  it('every object validates against its Kubernetes or CRD schema', () => {
    const all = objects();
    expect(all.length).toBeGreaterThan(5);
    const errors = all.map((o) => ({ object: id(o), errors: schemaErrors(o) })).filter((e) => e.errors.length > 0);
    expect(errors).toEqual([]);
  });

  it('no object has a field its type lacks (the API server rejects unknown fields)', () => {
    const all = objects();
    const errors = fieldErrors(all).map((e, i) => ({ object: id(all[i]!), errors: e })).filter((e) => e.errors.length > 0);
    expect(errors).toEqual([]);
  }, 60_000);

  it('every object has a valid name, unique per kind, in the mesh namespace', () => {
    const all = objects();
    for (const o of all) expect(o.metadata?.name, `${o.kind} metadata.name`).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    const ids = all.map(id);
    expect(ids.filter((x, i) => ids.indexOf(x) !== i)).toEqual([]);
    if (expected.ownsNamespace) expect(byKindName('Namespace', expected.namespace)).toBeDefined();
    for (const o of all.filter((x) => x.kind !== 'Namespace')) expect(o.metadata.namespace, `${id(o)} namespace`).toBe(expected.namespace);
  });

  it('every container image is pinned (a tag other than latest, or a digest)', () => {
    expect(allContainers().length).toBeGreaterThan(4);
    for (const { t, c } of allContainers()) expect(pinned(String(c.image ?? '')), `${id(t.owner)} ${c.name}: image ${c.image}`).toBe(true);
  });

  it('every infermesh container starts an existing service, and its listen ports match its container ports', () => {
    expect(ours().length).toBeGreaterThanOrEqual(4);
    for (const { t, c } of ours()) {
      const entry = serviceEntry(c.command);
      expect(entry, `${id(t.owner)} command ${JSON.stringify(c.command)}`).toBeDefined();
      expect(c.command.slice(0, 3)).toEqual(['node', '--import', '@infermesh/telemetry/register']);
      const env = envOf(c);
      const port = (name: string) => (c.ports ?? []).find((p: Obj) => p.name === name)?.containerPort;
      const role = roleOf(c);
      expect(port('grpc'), `${id(t.owner)} has a port named grpc`).toBeDefined();
      expect(env[portVars[role]!], `${id(t.owner)} ${portVars[role]}`).toBe(String(port('grpc')));
      if (role === 'monitor') expect(env.MONITOR_METRICS_PORT).toBe(String(port('metrics')));
      if (role === 'router') expect(env.ROUTER_HTTP_PORT, 'the router serves REST on port http').toBe(String(port('http')));
    }
  });

  it('every infermesh container has gRPC liveness and readiness probes on its plaintext health port', () => {
    // The "grpc" ports run mutual TLS, which kubelet's gRPC probes do not speak: each service
    // also serves grpc.health.v1 alone on GRPC_HEALTH_PORT (port "health").
    for (const { t, c } of ours()) {
      const port = c.ports.find((p: Obj) => p.name === 'health')?.containerPort;
      expect(envOf(c).GRPC_HEALTH_PORT, `${id(t.owner)} GRPC_HEALTH_PORT`).toBe(String(port));
      for (const probe of ['livenessProbe', 'readinessProbe'] as const) expect(c[probe]?.grpc?.port, `${id(t.owner)} ${probe}`).toBe(port);
      if (c.startupProbe) expect(c.startupProbe.grpc?.port).toBe(port);
    }
  });

  it('every Service selects pods of a Deployment or StatefulSet that have its target ports', () => {
    const services = objects().filter((o) => o.kind === 'Service');
    expect(services.length).toBeGreaterThanOrEqual(3);
    for (const svc of services) {
      const selector: Obj = svc.spec?.selector ?? {};
      expect(Object.keys(selector).length, `${id(svc)} has a selector`).toBeGreaterThan(0);
      const matched = templates().filter(
        (t) => ['Deployment', 'StatefulSet'].includes(t.owner.kind) && labelsMatch(selector, t.template.metadata?.labels ?? {}),
      );
      expect(matched.map((t) => id(t.owner)), `${id(svc)} selector ${JSON.stringify(selector)}`).not.toEqual([]);
      for (const port of svc.spec.ports ?? []) {
        const target = port.targetPort ?? port.port;
        const found = matched.some((t) =>
          (t.template.spec.containers ?? []).some((c: Obj) =>
            (c.ports ?? []).some((cp: Obj) => (typeof target === 'string' ? cp.name === target : cp.containerPort === target)),
          ),
        );
        expect(found, `${id(svc)} port ${port.name} -> targetPort ${target}`).toBe(true);
      }
    }
    // The public endpoint: gRPC 8001 and REST 8000 (named http).
    const router = byKindName('Service', 'router') ?? services.find((s) => s.spec.selector?.['app.kubernetes.io/name'] === 'router');
    expect(router?.spec.ports.map((p: Obj) => `${p.name}:${p.port}`)).toEqual(expect.arrayContaining(['grpc:8001', 'http:8000']));
  });

  it('Deployment and StatefulSet selectors match their own pod template labels; PDBs select pods', () => {
    for (const t of templates().filter((x) => ['Deployment', 'StatefulSet'].includes(x.owner.kind))) {
      const selector = t.owner.spec?.selector?.matchLabels ?? {};
      expect(Object.keys(selector).length).toBeGreaterThan(0);
      expect(labelsMatch(selector, t.template.metadata?.labels ?? {}), id(t.owner)).toBe(true);
    }
    for (const pdb of objects().filter((o) => o.kind === 'PodDisruptionBudget')) {
      expect(templates().some((t) => labelsMatch(pdb.spec.selector.matchLabels, t.template.metadata?.labels ?? {})), id(pdb)).toBe(true);
    }
  });

  it('workers advertise their pod IP and load models an init container copied into an emptyDir', () => {
    const workers = ours().filter(({ c }) => roleOf(c) === 'worker');
    expect(workers.length).toBeGreaterThan(0);
    for (const { t, c } of workers) {
      const env = Object.fromEntries(c.env.map((e: Obj) => [e.name, e]));
      expect(env.WORKER_ADVERTISE_HOST.valueFrom.fieldRef.fieldPath, id(t.owner)).toBe('status.podIP');
      expect(env.WORKER_HOST.value).toBe('0.0.0.0');
      expect(env.PREPROCESSOR_ADDRESS.value).toMatch(/^[a-z0-9.-]*preprocessor[a-z0-9.-]*:8003$/);
      const repo = env.MODEL_REPOSITORY.value;
      const mount = c.volumeMounts.find((m: Obj) => m.mountPath === repo);
      expect(mount, `${id(t.owner)} mounts ${repo}`).toBeDefined();
      expect(mount.readOnly).toBe(true);
      // No ReadWriteMany claim: each pod gets its own copy.
      expect(volumeOf(t, mount.name)?.emptyDir, `${id(t.owner)} models volume is an emptyDir`).toBeDefined();
      const init = (t.template.spec.initContainers ?? []).find((i: Obj) => (i.volumeMounts ?? []).some((m: Obj) => m.name === mount.name && !m.readOnly));
      expect(init, `${id(t.owner)}: an init container fills ${mount.name}`).toBeDefined();
      expect(init.image, 'the init container uses the worker image').toBe(c.image);
    }
    expect(objects().filter((o) => o.kind === 'PersistentVolumeClaim' && o.spec.accessModes.includes('ReadWriteMany'))).toEqual([]);
  });

  it('referenced ConfigMaps exist, and the shared settings point at Services of the rendering', () => {
    for (const { t, c } of allContainers()) {
      for (const ref of c.envFrom ?? []) {
        if (ref.configMapRef) expect(byKindName('ConfigMap', ref.configMapRef.name), `${id(t.owner)} envFrom ${ref.configMapRef.name}`).toBeDefined();
      }
      for (const e of c.env ?? []) {
        const ref = e.valueFrom?.configMapKeyRef;
        if (ref) expect(byKindName('ConfigMap', ref.name)?.data?.[ref.key], `${id(t.owner)} ${e.name}`).toBeDefined();
      }
    }
    for (const t of templates()) {
      for (const v of t.template.spec.volumes ?? []) if (v.configMap) expect(byKindName('ConfigMap', v.configMap.name), `${id(t.owner)} volume ${v.name}`).toBeDefined();
    }
    const settings = ours().map(({ c }) => ({ ...Object.fromEntries((c.envFrom ?? []).flatMap((r: Obj) => Object.entries(byKindName('ConfigMap', r.configMapRef?.name)?.data ?? {}))), ...envOf(c) }));
    for (const s of settings) {
      for (const key of ['NATS_URL', 'NATS_SUBJECT_PREFIX', 'GRPC_MAX_MESSAGE_BYTES']) expect(s[key], key).toBeDefined();
      const natsHost = new URL(s.NATS_URL).hostname;
      if (expected.inClusterNats) expect(byKindName('Service', natsHost), `NATS_URL ${s.NATS_URL}`).toBeDefined();
      if (s.OTEL_EXPORTER_OTLP_ENDPOINT && !new URL(s.OTEL_EXPORTER_OTLP_ENDPOINT).hostname.includes('.')) {
        expect(byKindName('Service', new URL(s.OTEL_EXPORTER_OTLP_ENDPOINT).hostname), s.OTEL_EXPORTER_OTLP_ENDPOINT).toBeDefined();
      }
    }
  });

  it("routers (pipelines' glue) and workers (images) reach the preprocessor: PREPROCESSOR_ADDRESS is its Service and gRPC port", () => {
    const preprocessor = ours().find(({ c }) => roleOf(c) === 'preprocessor');
    expect(preprocessor, 'a preprocessor Deployment').toBeDefined();
    const { t: pre, c: preContainer } = preprocessor!;
    const grpcPort = (preContainer.ports ?? []).find((p: Obj) => p.name === 'grpc')?.containerPort;
    const callers = ours().filter(({ c }) => ['router', 'worker'].includes(roleOf(c)));
    expect(new Set(callers.map(({ c }) => roleOf(c)))).toEqual(new Set(['router', 'worker']));
    for (const { t, c } of callers) {
      const where = `${id(t.owner)} PREPROCESSOR_ADDRESS`;
      const address = envOf(c).PREPROCESSOR_ADDRESS;
      // Unset, the router answers UNAVAILABLE for every pipeline with a glue step (ocr).
      expect(address, where).toMatch(/^[a-z0-9.-]+:\d+$/);
      const [host, port] = String(address).split(':') as [string, string];
      const name = host.split('.')[0]!;
      // The Service's name, or its DNS name in the mesh namespace.
      const suffixes = ['', `.${expected.namespace}`, `.${expected.namespace}.svc`, `.${expected.namespace}.svc.cluster.local`];
      expect(suffixes.map((x) => `${name}${x}`), where).toContain(host);
      const service = byKindName('Service', name);
      expect(service, `${where}: Service/${name}`).toBeDefined();
      expect(labelsMatch(service!.spec.selector ?? {}, pre.template.metadata?.labels ?? {}), `${where}: Service/${name} selects the preprocessor`).toBe(true);
      const servicePort = (service!.spec.ports ?? []).find((p: Obj) => p.port === Number(port));
      expect(servicePort, `${where}: Service/${name} has port ${port}`).toBeDefined();
      const target = servicePort.targetPort ?? servicePort.port;
      expect(typeof target === 'string' ? target : target === grpcPort ? 'grpc' : String(target), `${where}: the port reaches the preprocessor's gRPC port`).toBe('grpc');
    }
  });

  it("the monitor reads its alert rules from a ConfigMap, a copy of the repository's rules", () => {
    const monitor = templates().find((t) => t.template.metadata.labels['app.kubernetes.io/name'] === 'monitor')!;
    const container = monitor.template.spec.containers[0];
    const mount = mountOf(container, 'alerts')!;
    expect(envOf(container).MONITOR_ALERT_RULES_FILE).toBe(`${mount.mountPath}/rules.yaml`);
    const configMap = byKindName('ConfigMap', volumeOf(monitor, 'alerts')!.configMap.name)!;
    expect(configMap.data['rules.yaml']).toBe(readFileSync(expected.alertRulesFile, 'utf8'));
  });

  it('every pod runs as non-root with the restricted security settings, and every container has requests and limits', () => {
    for (const t of templates()) {
      const pod = t.template.spec;
      expect(pod.hostNetwork ?? false).toBe(false);
      expect(pod.securityContext?.seccompProfile?.type, `${id(t.owner)} seccompProfile`).toBe('RuntimeDefault');
      expect((pod.volumes ?? []).filter((v: Obj) => v.hostPath)).toEqual([]);
      for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
        const where = `${id(t.owner)} container ${c.name}`;
        expect(c.securityContext?.runAsNonRoot ?? pod.securityContext?.runAsNonRoot, `${where} runAsNonRoot`).toBe(true);
        const uid = c.securityContext?.runAsUser ?? pod.securityContext?.runAsUser;
        if (uid !== undefined) expect(uid, `${where} runAsUser`).toBeGreaterThan(0);
        expect(c.securityContext?.allowPrivilegeEscalation, `${where} allowPrivilegeEscalation`).toBe(false);
        expect(c.securityContext?.privileged ?? false).toBe(false);
        expect(c.securityContext?.capabilities?.drop, `${where} drops capabilities`).toContain('ALL');
        for (const kind of ['requests', 'limits'] as const) {
          for (const resource of ['cpu', 'memory']) expect(c.resources?.[kind]?.[resource], `${where} ${kind}.${resource}`).toBeDefined();
        }
      }
    }
  });

  it('infermesh pods drain for at least 30 s on SIGTERM (workers 60 s) and disable service links', () => {
    // A Service named "router" would inject ROUTER_PORT=tcp://10.x.y.z:8001 into every pod of the
    // namespace with service links on, clashing with the router's own setting.
    for (const t of templates()) expect(t.template.spec.enableServiceLinks, id(t.owner)).toBe(false);
    for (const { t, c } of ours()) {
      const grace = t.template.spec.terminationGracePeriodSeconds;
      expect(grace, `${id(t.owner)} terminationGracePeriodSeconds`).toBeGreaterThanOrEqual(roleOf(c) === 'worker' ? 60 : 30);
    }
  });

  it('GPU workers take one GPU each and use the CUDA provider; CPU workers take none', () => {
    for (const { t, c } of ours().filter(({ c }) => roleOf(c) === 'worker')) {
      const env = envOf(c);
      const gpus = c.resources.limits['nvidia.com/gpu'];
      if (env.WORKER_EXECUTION_PROVIDERS === 'cpu') {
        expect(gpus, id(t.owner)).toBeUndefined();
        continue;
      }
      expect(gpus, `${id(t.owner)} nvidia.com/gpu`).toBe(1);
      expect(c.image).toMatch(/^(.*\/)?infermesh-gpu:/);
      expect(env.WORKER_EXECUTION_PROVIDERS).toBe('cuda,cpu');
      expect(env.WORKER_DEVICE).toBe('gpu0');
      const spec = t.template.spec;
      expect(spec.tolerations.some((x: Obj) => x.key === 'nvidia.com/gpu'), `${id(t.owner)} tolerates the GPU taint`).toBe(true);
      expect(Object.keys(spec.nodeSelector ?? {}).length, `${id(t.owner)} nodeSelector`).toBeGreaterThan(0);
      // Rolling a GPU Deployment must not need a spare GPU for a surge pod.
      expect(t.owner.spec.strategy?.rollingUpdate?.maxSurge).toBe(0);
    }
  });

  if (expected.meshTls) {
    it('every infermesh service runs mutual TLS with a csi-driver certificate that names its role', () => {
      for (const { t, c } of ours()) {
        const env = envOf(c);
        const at = mountOf(c, 'tls')?.mountPath;
        expect(at, `${id(t.owner)} mounts tls`).toBeDefined();
        expect([env.MESH_TLS_CA_FILE, env.MESH_TLS_CERT_FILE, env.MESH_TLS_KEY_FILE]).toEqual([`${at}/ca.crt`, `${at}/tls.crt`, `${at}/tls.key`]);
        const tls = volumeOf(t, 'tls')!;
        expect(tls.csi?.driver, id(t.owner)).toBe('csi.cert-manager.io');
        const attributes = tls.csi.volumeAttributes;
        expect(attributes['csi.cert-manager.io/key-usages']).toMatch(/server auth,client auth/);
        const role = roleOf(c);
        // A worker's name is its pod's: the worker id it announces (WORKER_ID from metadata.name).
        const name = role === 'worker' ? '${POD_NAME}' : role;
        expect(attributes['csi.cert-manager.io/uri-sans'], id(t.owner)).toBe(`spiffe://infermesh/${role}/${name}`);
        if (role === 'worker') expect(env.WORKER_ID?.fieldRef?.fieldPath).toBe('metadata.name');
      }
    });

    it("the preprocessor admits its callers' certificates: routers (OcrCrop) and workers (Preprocess)", () => {
      // The roles its server lets call each method (services/preprocessor/src/server.ts).
      const method = { router: 'OcrCrop', worker: 'Preprocess' } as const;
      for (const { t, c } of ours().filter(({ c }) => ['router', 'worker'].includes(roleOf(c)))) {
        const sans: string = volumeOf(t, 'tls')!.csi.volumeAttributes['csi.cert-manager.io/uri-sans'];
        const role = /^spiffe:\/\/infermesh\/([^/]+)\//.exec(sans)?.[1];
        const calls = method[roleOf(c) as keyof typeof method];
        expect(PREPROCESSOR_CALLERS[calls], `${id(t.owner)} calls the preprocessor's ${calls} as ${sans}`).toContain(role);
        expect(envOf(c).MESH_TLS_CERT_FILE, `${id(t.owner)} presents its certificate`).toBeDefined();
      }
    });

    it('services that use NATS connect as their own user, with the password from the Secret as a file', () => {
      for (const { t, c } of ours().filter(({ c }) => roleOf(c) !== 'preprocessor')) {
        const env = envOf(c);
        const role = roleOf(c);
        expect(env.NATS_USER, id(t.owner)).toBe(role);
        const secret = volumeOf(t, 'nats-password')?.secret;
        expect(secret?.items).toEqual([{ key: role, path: 'password' }]);
        expect(env.NATS_PASSWORD_FILE).toBe(`${mountOf(c, 'nats-password')?.mountPath}/password`);
      }
    });
  }

  if (expected.inClusterNats) {
    it('NATS runs JetStream on a persistent volume, with users from the Secret', () => {
      const nats = byKindName('StatefulSet', 'nats')!;
      const c = nats.spec.template.spec.containers[0];
      const args: string[] = c.args;
      expect(args).toContain('-js');
      const storeDir = args[args.indexOf('-sd') + 1];
      const mount = c.volumeMounts.find((m: Obj) => m.mountPath === storeDir);
      expect(nats.spec.volumeClaimTemplates.map((v: Obj) => v.metadata.name)).toContain(mount.name);
      if (expected.meshTls) {
        expect(args.slice(0, 1)).toEqual(['-c']);
        for (const role of natsUsers) expect(envOf(c)[`${role.toUpperCase()}_PASSWORD`]?.secretKeyRef?.key, role).toBe(role);
      }
    });

    if (expected.meshTls) {
      it("nats.conf's users and permissions are the mesh's own (natsAuthorization), and nats-server accepts the config it starts with", async () => {
        const { natsAuthorization } = await import('@infermesh/contracts');
        const data: Record<string, string> = byKindName('ConfigMap', 'nats-config')!.data;
        const want = natsAuthorization(natsUsers.map((role) => ({ user: role, password: { env: `${role.toUpperCase()}_PASSWORD` }, role })), 'infermesh');
        expect(data['nats.conf']!.startsWith(want)).toBe(true);
        expect(data['nats.conf']).toMatch(/tls \{[^}]*ca_file/);
        // Every file of the ConfigMap, without the tls blocks (their files exist only in the pod).
        const dir = mkdtempSync(join(tmpdir(), 'infermesh-nats-conf-'));
        for (const [file, text] of Object.entries(data)) writeFileSync(join(dir, file), text.replace(/tls \{[^}]*\}\s*/g, ''));
        const c = byKindName('StatefulSet', 'nats')!.spec.template.spec.containers[0];
        const confFile = c.args[c.args.indexOf('-c') + 1] as string;
        const passwords = Object.fromEntries(natsUsers.map((role) => [`${role.toUpperCase()}_PASSWORD`, 'x']));
        const test = (env: Record<string, string>) =>
          spawnSync(natsServerBinary(), ['-c', join(dir, confFile.split('/').pop()!), '-t'], { env: { ...process.env, ...env, POD_NAME: 'nats-0' }, encoding: 'utf8' });
        const ok = test(passwords);
        expect(ok.status, ok.stderr).toBe(0);
        const { MONITOR_PASSWORD: _left, ...others } = passwords;
        const missing = test(others);
        expect(missing.stderr).toMatch(/MONITOR_PASSWORD/);
        expect(missing.status).not.toBe(0);
      });
    }
  }

  if (expected.networkPolicies) {
    it('NetworkPolicy: nothing reaches a pod unless allowed; workers only from routers, the preprocessor only from workers and routers', () => {
      const policies = objects().filter((o) => o.kind === 'NetworkPolicy');
      const denyAll = policies.find((p) => Object.keys(p.spec.podSelector ?? {}).length === 0);
      expect(denyAll?.spec.policyTypes).toEqual(['Ingress']);
      expect(denyAll?.spec.ingress ?? []).toEqual([]);
      const rulesFor = (name: string) =>
        policies.filter((p) => p.spec.podSelector?.matchLabels?.['app.kubernetes.io/name'] === name).flatMap((p) => p.spec.ingress ?? []);
      const sourcesOf = (name: string, port: number) =>
        rulesFor(name).filter((rule: Obj) => rule.ports.some((p: Obj) => p.port === port)).map((rule: Obj) => rule.from ?? 'anywhere');
      for (const t of templates()) {
        const name = t.template.metadata.labels['app.kubernetes.io/name'];
        expect(rulesFor(name).length, `a policy admits something to ${name}`).toBeGreaterThan(0);
        // Every port a pod listens on is allowed by some rule (or probes and peers would fail).
        for (const c of t.template.spec.containers) {
          for (const port of c.ports ?? []) expect(sourcesOf(name, port.containerPort).length, `${name}:${port.containerPort}`).toBeGreaterThan(0);
        }
      }
      expect(sourcesOf('worker', 8005)).toEqual([[{ podSelector: { matchLabels: { 'app.kubernetes.io/name': 'router' } } }]]);
      // Workers send their models' images (Preprocess); routers run pipelines' glue steps (OcrCrop).
      const podsOf = (sources: Array<Obj[] | 'anywhere'>) =>
        sources.flatMap((from) => (from === 'anywhere' ? ['anywhere'] : from.map((peer) => {
          const { podSelector, ...rest } = peer;
          const only = podSelector && Object.keys(rest).length === 0 && Object.keys(podSelector).join() === 'matchLabels';
          return only ? podSelector.matchLabels['app.kubernetes.io/name'] : JSON.stringify(peer);
        }))).sort();
      expect(podsOf(sourcesOf('preprocessor', 8003))).toEqual(['router', 'worker']);
      // Egress is not restricted; should a policy ever restrict a caller's, it must let it reach the preprocessor.
      const labelsOf = (name: string) => templates().find((t) => t.template.metadata.labels['app.kubernetes.io/name'] === name)!.template.metadata.labels;
      for (const caller of ['router', 'worker']) {
        const egress = policies.filter(
          (p) => (p.spec.policyTypes ?? []).includes('Egress') && labelsMatch(p.spec.podSelector?.matchLabels ?? {}, labelsOf(caller)),
        );
        if (egress.length === 0) continue;
        const reaches = egress.flatMap((p) => p.spec.egress ?? []).some((rule: Obj) =>
          (rule.ports === undefined || rule.ports.some((p: Obj) => p.port === 8003))
          && (rule.to === undefined || rule.to.some((peer: Obj) => labelsMatch(peer.podSelector?.matchLabels ?? { never: 'matched' }, labelsOf('preprocessor')))),
        );
        expect(reaches, `${caller} egress to preprocessor:8003`).toBe(true);
      }
      expect(sourcesOf('router', 8001)).toEqual(['anywhere']);
      expect(sourcesOf('router', 8000)).toEqual(['anywhere']);
      if (expected.inClusterNats) {
        expect(sourcesOf('nats', 4222)[0][0].podSelector.matchExpressions[0].values.sort()).toEqual(['monitor', 'router', 'worker']);
      }
    });
  }
}
