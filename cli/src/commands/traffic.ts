/**
 * infermesh traffic <model>: shows the model's traffic policy, or changes it — the weights
 * between versions for unversioned requests (a canary) and the shadow versions that get a
 * copy of every request. The policy is put in the `<prefix>_traffic` key-value bucket that
 * every router watches; who asked (user@host, or --by) and when go with it, and the bucket
 * keeps each model's last 64 policies (`nats kv history <prefix>_traffic <model>`).
 *
 * An option replaces its part of the policy and keeps the rest: `--shadow 2` leaves the
 * weights as they were. `--clear` puts an empty policy: the newest version serves every
 * unversioned request again, and no version is shadowed.
 */
import { hostname, userInfo } from 'node:os';
import { connectBus, natsConnectOptions, trafficPolicies, type BusOptions } from '@infermesh/bus';
import type { TrafficPolicy, TrafficPolicy__Output } from '@infermesh/contracts';
import { createLogger } from '@infermesh/log';
import { runningMesh } from '../client.js';

/** Bounds a policy may have (the routers refuse more). */
const MAX_VERSIONS = 16;
const MAX_SHADOWS = 4;
const MAX_WEIGHT = 1_000_000;
const VERSION = /^[1-9][0-9]{0,17}$/;

export interface TrafficChange {
  weights?: { version: string; weight: number }[];
  shadows?: string[];
  clear?: boolean;
}

/** "1=90,2=10" as weights; throws naming what is wrong. */
export function parseWeights(text: string): { version: string; weight: number }[] {
  const weights = text.split(',').map((part) => {
    const [version, weight, extra] = part.trim().split('=');
    if (extra !== undefined || !version || weight === undefined) throw new Error(`--weights: '${part}' is not VERSION=WEIGHT`);
    if (!VERSION.test(version)) throw new Error(`--weights: '${version}' is not a version number`);
    const n = Number(weight);
    if (!Number.isInteger(n) || n < 0 || n > MAX_WEIGHT) throw new Error(`--weights: version ${version} has weight '${weight}' (an integer from 0 to ${MAX_WEIGHT})`);
    return { version, weight: n };
  });
  if (weights.length > MAX_VERSIONS) throw new Error(`--weights: ${weights.length} versions (at most ${MAX_VERSIONS})`);
  if (new Set(weights.map((w) => w.version)).size !== weights.length) throw new Error('--weights: a version is named twice');
  if (weights.every((w) => w.weight === 0)) throw new Error('--weights: every weight is 0');
  return weights;
}

/** "2,3" as shadow versions; "none" as no shadow. */
export function parseShadows(text: string): string[] {
  if (text.trim() === 'none') return [];
  const shadows = text.split(',').map((v) => v.trim());
  for (const v of shadows) if (!VERSION.test(v)) throw new Error(`--shadow: '${v}' is not a version number`);
  if (shadows.length > MAX_SHADOWS) throw new Error(`--shadow: ${shadows.length} versions (at most ${MAX_SHADOWS})`);
  if (new Set(shadows).size !== shadows.length) throw new Error('--shadow: a version is named twice');
  return shadows;
}

/** The policy after `change`: each part given replaces the current one, the others are kept. */
export function changedPolicy(model: string, current: TrafficPolicy__Output | undefined, change: TrafficChange, by: string, reason: string, nowMs: number): TrafficPolicy {
  return {
    model,
    weights: change.clear ? [] : change.weights ?? current?.weights ?? [],
    shadowVersions: change.clear ? [] : change.shadows ?? current?.shadowVersions ?? [],
    setBy: by,
    setAtMs: String(nowMs),
    reason,
  };
}

/** The policy as lines for a person. */
export function describePolicy(model: string, policy: TrafficPolicy__Output | undefined): string[] {
  if (!policy) return [`${model}: no traffic policy (the newest version serves every unversioned request)`];
  const total = policy.weights.reduce((sum, w) => sum + w.weight, 0);
  const weights = policy.weights.length === 0 ? 'the newest version serves every unversioned request' : policy.weights.map((w) => `version ${w.version} ${((100 * w.weight) / total).toFixed(1)} %`).join(', ');
  const shadows = policy.shadowVersions.length === 0 ? 'none' : policy.shadowVersions.join(', ');
  const when = Number(policy.setAtMs) > 0 ? new Date(Number(policy.setAtMs)).toISOString() : 'unknown';
  return [`${model}: ${weights}`, `  shadow versions: ${shadows}`, `  set by ${policy.setBy || 'unknown'} at ${when}${policy.reason ? ` (${policy.reason})` : ''}`];
}

export interface TrafficTarget {
  natsUrl: string;
  connectOptions?: BusOptions['connectOptions'];
  prefix?: string;
}

/** Reads the model's policy and, with a change, puts the changed one; returns the policy in force. */
export async function applyTraffic(target: TrafficTarget, model: string, change: TrafficChange | undefined, by: string, reason = ''): Promise<TrafficPolicy__Output | undefined> {
  const bus = await connectBus({ url: target.natsUrl, name: 'infermesh cli', prefix: target.prefix ?? 'infermesh', logger: createLogger('cli', { level: 'silent' }), connectOptions: target.connectOptions });
  try {
    const store = await trafficPolicies(bus);
    const current = await store.get(model);
    if (!change) return current;
    await store.put(changedPolicy(model, current, change, by, reason, Date.now()));
    return await store.get(model);
  } finally {
    await bus.drain();
  }
}

export interface TrafficOptions {
  model: string;
  weights?: { version: string; weight: number }[];
  /** Shadow versions; []: none. */
  shadows?: string[];
  clear: boolean;
  /** Who asks (default user@host). */
  by?: string;
  reason: string;
  /** NATS (default NATS_URL, else the mesh `infermesh up` runs here, else 4222). */
  nats?: string;
  json: boolean;
}

/** `infermesh traffic <model>`: shows the policy, or changes it (with weights, shadows or clear). Returns the exit code. */
export async function traffic(options: TrafficOptions): Promise<number> {
  const { model } = options;
  if (options.clear && (options.weights || options.shadows)) throw new Error('--clear takes no --weights or --shadow');
  const change: TrafficChange | undefined = options.clear
    ? { clear: true }
    : options.weights || options.shadows ? { weights: options.weights, shadows: options.shadows } : undefined;
  const running = options.nats || process.env.NATS_URL ? undefined : runningMesh();
  const natsUrl = options.nats ?? process.env.NATS_URL ?? running?.nats.url ?? 'nats://127.0.0.1:4222';
  const by = options.by ?? `${userInfo().username}@${hostname()}`;
  const policy = await applyTraffic({ natsUrl, connectOptions: natsConnectOptions(running?.nats.settings ?? process.env), prefix: process.env.NATS_SUBJECT_PREFIX ?? 'infermesh' }, model, change, by.slice(0, 128), options.reason.slice(0, 256));
  if (options.json) console.log(JSON.stringify(policy ?? null, null, 2));
  else for (const line of describePolicy(model, policy)) console.log(line);
  return 0;
}
