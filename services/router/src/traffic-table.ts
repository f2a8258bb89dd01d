/**
 * The traffic policies this router applies (TrafficPolicy, from the `<prefix>_traffic`
 * bucket every router watches): per model, how unversioned requests are shared between
 * versions (WeightedSplit) and which versions get a shadow copy of every request.
 *
 * A policy comes from an operator, through NATS: one that is not well formed (too many
 * versions, absurd weights, names that are not versions) is refused whole and the model
 * keeps the policy it had, so a bad put never half-applies.
 */
import type { TrafficPolicy__Output } from '@infermesh/contracts';
import type { Logger } from '@infermesh/log';
import { WeightedSplit } from './traffic-split.js';

/** Versions a policy may weigh, and shadows it may name, at most. */
export const MAX_WEIGHTED_VERSIONS = 16;
export const MAX_SHADOW_VERSIONS = 4;
/** One weight at most: weights are relative, percentages or per-mille are plenty. */
export const MAX_WEIGHT = 1_000_000;
/** A version is Triton's: a positive integer (the repository's directory name). */
const VERSION = /^[1-9][0-9]{0,17}$/;
/** Models with a policy at most: each is a key an operator put; beyond it new ones are refused. */
export const MAX_POLICIES = 1024;

interface AppliedPolicy {
  split?: WeightedSplit;
  shadows: readonly string[];
}

/** Why a policy cannot be applied; undefined when it can. */
export function policyProblem(policy: TrafficPolicy__Output): string | undefined {
  if (!policy.model) return 'it names no model';
  if (policy.weights.length > MAX_WEIGHTED_VERSIONS) return `it weighs ${policy.weights.length} versions (at most ${MAX_WEIGHTED_VERSIONS})`;
  if (policy.shadowVersions.length > MAX_SHADOW_VERSIONS) return `it names ${policy.shadowVersions.length} shadow versions (at most ${MAX_SHADOW_VERSIONS})`;
  const weighed = new Set<string>();
  for (const { version, weight } of policy.weights) {
    if (!VERSION.test(version)) return `weighted version '${version.slice(0, 32)}' is not a version number`;
    if (weighed.has(version)) return `version ${version} is weighed twice`;
    if (!Number.isInteger(weight) || weight < 0 || weight > MAX_WEIGHT) return `version ${version} has weight ${weight} (0 to ${MAX_WEIGHT})`;
    weighed.add(version);
  }
  if (policy.weights.length > 0 && policy.weights.every((w) => w.weight === 0)) return 'every weight is 0';
  for (const version of policy.shadowVersions) {
    if (!VERSION.test(version)) return `shadow version '${version.slice(0, 32)}' is not a version number`;
  }
  if (new Set(policy.shadowVersions).size !== policy.shadowVersions.length) return 'a shadow version is named twice';
  return undefined;
}

export class TrafficTable {
  private readonly policies = new Map<string, AppliedPolicy>();

  constructor(private readonly logger: Logger) {}

  /** Applies a policy from the bucket (logged with who set it); a malformed one is refused and logged. */
  apply(policy: TrafficPolicy__Output): boolean {
    const fields = {
      model: policy.model.slice(0, 128), weights: policy.weights.slice(0, MAX_WEIGHTED_VERSIONS).map((w) => `${w.version.slice(0, 32)}=${w.weight}`).join(','),
      shadows: policy.shadowVersions.slice(0, MAX_SHADOW_VERSIONS).map((v) => v.slice(0, 32)), set_by: policy.setBy.slice(0, 128), set_at_ms: Number(policy.setAtMs), reason: policy.reason.slice(0, 256),
    };
    const problem = policyProblem(policy) ?? (!this.policies.has(policy.model) && this.policies.size >= MAX_POLICIES ? `this router applies ${MAX_POLICIES} policies already` : undefined);
    if (problem) {
      this.logger.warn({ ...fields, why: problem }, 'traffic policy refused; the model keeps the one it had');
      return false;
    }
    if (policy.weights.length === 0 && policy.shadowVersions.length === 0) this.policies.delete(policy.model);
    else {
      this.policies.set(policy.model, {
        split: policy.weights.length > 0 ? new WeightedSplit(policy.weights.map((w) => ({ version: w.version, weight: w.weight }))) : undefined,
        shadows: [...policy.shadowVersions],
      });
    }
    this.logger.info(fields, 'traffic policy applied');
    return true;
  }

  /**
   * The version for an unversioned request of `model` by the model's weights, among the
   * versions `served` says are served; undefined (the newest serves it) without weights or
   * when no weighted version is served.
   */
  versionFor(model: string, served: (version: string) => boolean): string | undefined {
    return this.policies.get(model)?.split?.next(served);
  }

  /** The versions that get a shadow copy of each request of `model`. */
  shadowsOf(model: string): readonly string[] {
    return this.policies.get(model)?.shadows ?? [];
  }
}
