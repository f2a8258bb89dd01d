// Rendering and schema validation of the Kubernetes manifests, shared by kubernetes.test.ts
// (kustomize) and helm.test.ts (the chart): both render with the real tools (kubectl kustomize,
// helm template), then validate every object against the Kubernetes OpenAPI schemas and the CRD
// schemas of cert-manager, the Prometheus Operator and KEDA (kubernetes-models, offline).
import { execFileSync, spawnSync } from 'node:child_process';
import { parseAllDocuments } from 'yaml';
import * as kubernetes from 'kubernetes-models';
import * as certManager from '@kubernetes-models/cert-manager';
import * as prometheusOperator from '@kubernetes-models/prometheus-operator';
import * as keda from '@kubernetes-models/keda';

export type Obj = Record<string, any>;

/** Under CI the tools must be there: a missing one fails the tests instead of skipping them. */
export const toolsRequired = process.env.CI === 'true';

export function hasTool(command: string, versionArgs: string[]): boolean {
  try {
    execFileSync(command, versionArgs, { stdio: 'ignore', timeout: 20_000 });
    return true;
  } catch {
    return false;
  }
}

/** At most this much rendered YAML is parsed: a runaway template fails here, not in the parser. */
const MAX_RENDERED_BYTES = 8 * 1024 * 1024;

/**
 * Runs a renderer (kubectl kustomize, helm template) and parses its documents. Throws with the
 * tool's own message when it fails, and when it warns (a deprecated field is a failure too).
 */
export function renderWith(command: string, args: string[], options: { cwd?: string; allowStderr?: RegExp } = {}): Obj[] {
  const run = spawnSync(command, args, { cwd: options.cwd, encoding: 'utf8', timeout: 120_000, maxBuffer: MAX_RENDERED_BYTES });
  if (run.error) {
    const missing = (run.error as NodeJS.ErrnoException).code === 'ENOENT';
    throw new Error(
      missing ? `${command} is not installed (.ci/run installs it; see deploy/README.md, "Validation")` : `${command} ${args.join(' ')}: ${run.error.message}`,
    );
  }
  if (run.status !== 0) throw new Error(`${command} ${args.join(' ')} exited ${run.status}: ${run.stderr.trim()}`);
  const stderr = run.stderr
    .split('\n')
    .filter((l) => l.trim() !== '' && !(options.allowStderr?.test(l) ?? false))
    .join('\n');
  if (stderr !== '') throw new Error(`${command} ${args.join(' ')} warned: ${stderr}`);
  const docs = Array.from(parseAllDocuments(run.stdout));
  for (const d of docs) if (d.errors.length > 0) throw new Error(`${command} output does not parse: ${d.errors[0]!.message}`);
  return docs.map((d) => d.toJS() as Obj | null).filter((o): o is Obj => o !== null && o !== undefined);
}

// ---------------------------------------------------------------------------------------------
// schema validation
// ---------------------------------------------------------------------------------------------

interface ModelClass {
  apiVersion: string;
  kind: string;
  new (data: Obj): { validate(): void };
}

/** apiVersion/kind -> its kubernetes-models class, found by walking each package's exports. */
const models = new Map<string, ModelClass>();
function collect(exports: unknown, depth = 0): void {
  if (exports === null || typeof exports !== 'object' || depth > 4) return;
  for (const value of Object.values(exports)) {
    if (typeof value === 'function' && typeof (value as Partial<ModelClass>).apiVersion === 'string' && typeof (value as Partial<ModelClass>).kind === 'string') {
      const model = value as unknown as ModelClass;
      models.set(`${model.apiVersion}/${model.kind}`, model);
    } else {
      collect(value, depth + 1);
    }
  }
}
for (const pkg of [kubernetes, certManager, prometheusOperator, keda]) collect(pkg);

/**
 * The schema errors of one object ([] when it is valid). An apiVersion/kind without a schema is
 * an error: a typo in either would otherwise pass unchecked. kubernetes-models checks types,
 * required fields, enums and formats (quantities, ports); like kubeconform without -strict, it
 * does not reject unknown fields.
 */
export function schemaErrors(o: Obj): string[] {
  const model = models.get(`${o.apiVersion}/${o.kind}`);
  if (!model) return [`no schema for apiVersion ${o.apiVersion}, kind ${o.kind}`];
  try {
    new model(o).validate();
    return [];
  } catch (error) {
    return [(error as Error).message];
  }
}

/** How many apiVersion/kind pairs have a schema (Kubernetes 1.27 API + the three CRD packages). */
export const schemaCount = () => models.size;

// ---------------------------------------------------------------------------------------------
// object helpers
// ---------------------------------------------------------------------------------------------

export interface PodTemplate {
  owner: Obj;
  template: Obj; // { metadata, spec }
}

export function podTemplates(objects: Obj[]): PodTemplate[] {
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

export const id = (o: Obj) => `${o.kind}/${o.metadata?.name}`;
export const labelsMatch = (selector: Obj, labels: Obj) => Object.entries(selector).every(([k, v]) => labels?.[k] === v);
/** The infermesh image (CPU or GPU) runs our own services. */
export const isInfermeshImage = (image: string) => /^(.*\/)?infermesh(-gpu)?:/.test(image);
/** `services/<name>/dist/main.js` named in a command, or undefined. */
export const serviceEntry = (command: unknown): string | undefined =>
  (Array.isArray(command) ? command : []).find((a) => /^services\/[^/]+\/dist\/main\.js$/.test(String(a)));

/** An image reference is pinned when it has a tag other than latest, or a digest. */
export function pinned(image: string): boolean {
  if (/@sha256:[0-9a-f]{64}$/.test(image)) return true;
  const lastSegment = image.split('/').pop()!;
  const tag = lastSegment.includes(':') ? lastSegment.split(':').pop()! : '';
  return tag !== '' && tag !== 'latest' && !tag.includes('$');
}

export const envOf = (c: Obj): Record<string, any> => Object.fromEntries((c.env ?? []).map((e: Obj) => [e.name, e.value ?? e.valueFrom]));
