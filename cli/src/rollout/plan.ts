/**
 * What a rollout step does to a model's traffic policy: pure functions from the current policy
 * (and the repository's versions) to the weights or shadows to put, so each is tested alone.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { TrafficPolicy__Output } from '@infermesh/contracts';

const VERSION = /^[1-9][0-9]{0,17}$/;
/** The routers take at most 4 shadow versions. */
const MAX_SHADOWS = 4;

export class RolloutError extends Error {
  override readonly name = 'RolloutError';
}

export type Weights = { version: string; weight: number }[];

/** "10%" or "10": a whole percentage from 1 to 99 (0 is no canary, 100 is --promote). */
export function parseCanaryPercent(text: string): number {
  const match = /^\s*(\d{1,2})\s*%?\s*$/.exec(text);
  const percent = match ? Number(match[1]) : NaN;
  if (!(percent >= 1 && percent <= 99)) throw new RolloutError(`--canary must be a whole percentage from 1 % to 99 % (got '${text.slice(0, 32)}'); --promote sends 100 %`);
  return percent;
}

export function checkVersion(version: string, option = '--version'): string {
  if (!VERSION.test(version)) throw new RolloutError(`${option} must be a version number (got '${version.slice(0, 32)}')`);
  return version;
}

/** The model's version folders in the repository, ascending. */
export async function repositoryVersions(repository: string, model: string): Promise<string[]> {
  const entries = await readdir(join(repository, model), { withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isDirectory() && VERSION.test(e.name)).map((e) => e.name).sort((a, b) => Number(a) - Number(b));
}

/**
 * The version serving beside `candidate`: the other version the policy weighs most (a weight
 * of 0 counts: a promotion keeps the version it replaced at 0 so a rollback finds it); without
 * one, the newest other version of the repository (what serves when there is no policy).
 */
export function servingVersionOf(policy: TrafficPolicy__Output | undefined, candidate: string, versions: readonly string[]): string | undefined {
  const weighted = (policy?.weights ?? []).filter((w) => w.version !== candidate).sort((a, b) => b.weight - a.weight || Number(b.version) - Number(a.version));
  if (weighted.length > 0) return weighted[0].version;
  if (policy && policy.weights.some((w) => w.version === candidate)) return undefined;
  return versions.filter((v) => v !== candidate).at(-1);
}

/** The candidate of a policy when none is named: the newest version it weighs above 0 beside another (new versions have higher numbers). */
export function candidateOf(policy: TrafficPolicy__Output | undefined): string | undefined {
  const weighted = (policy?.weights ?? []).map((w) => w.version).sort((a, b) => Number(a) - Number(b));
  return weighted.length >= 2 ? weighted.at(-1) : undefined;
}

export function canaryWeights(serving: string, candidate: string, percent: number): Weights {
  return [{ version: serving, weight: 100 - percent }, { version: candidate, weight: percent }];
}

/** Every unversioned request to the candidate; the replaced version stays named at weight 0, so --rollback knows where to go back. */
export function promotedWeights(serving: string | undefined, candidate: string): Weights {
  return serving ? [{ version: candidate, weight: 100 }, { version: serving, weight: 0 }] : [{ version: candidate, weight: 100 }];
}

export function rolledBackWeights(serving: string): Weights {
  return [{ version: serving, weight: 100 }];
}

/** The shadows after adding `candidate` (kept in order, at most the routers' bound). */
export function shadowsWith(policy: TrafficPolicy__Output | undefined, candidate: string): string[] {
  const shadows = [...new Set([...(policy?.shadowVersions ?? []), candidate])];
  if (shadows.length > MAX_SHADOWS) throw new RolloutError(`the model would have ${shadows.length} shadow versions (at most ${MAX_SHADOWS}): remove one with infermesh traffic --shadow`);
  return shadows;
}

export function shadowsWithout(policy: TrafficPolicy__Output | undefined, version: string): string[] {
  return (policy?.shadowVersions ?? []).filter((v) => v !== version);
}
