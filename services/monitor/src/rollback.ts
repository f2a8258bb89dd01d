/**
 * Automatic rollback: an alert rule with `rollback: true` that fires for a canary version (one
 * the model's traffic policy weighs above 0 beside another version) rewrites the model's
 * policy to send every unversioned request to the other version, with `rule:<name>` as who
 * asked and the alert's figures as why. The traffic bucket's stream records the change (every
 * router applies it from there), and the log says it too.
 *
 * Each firing is acted on once (a firing is its fingerprint and start time); a model without
 * a canary is never touched; changes to one model are made one after another.
 */
import type { Alert__Output, TrafficPolicy, TrafficPolicy__Output } from '@infermesh/contracts';
import type { Logger } from '@infermesh/log';
import type { AlertRule } from './alerts/rules.js';

/** The part of the traffic bucket (TrafficPolicies, @infermesh/bus) a rollback reads and writes. */
/** The traffic policies as the rollback reads and changes them (libs/bus trafficPolicies). */
export interface PolicyStore {
  read(model: string): Promise<{ policy?: TrafficPolicy__Output; revision: number }>;
  /** False, storing nothing, when the policy changed since `revision`. */
  replace(policy: TrafficPolicy, revision: number): Promise<boolean>;
}

/** Times a rollback reads the policy again after someone changed it in between. */
const REPLACE_ATTEMPTS = 3;

export type RollbackOutcome =
  | { kind: 'rolled_back'; model: string; from: string; to: string; policy: TrafficPolicy }
  /** Not a firing of a rollback rule, or a firing already acted on. */
  | { kind: 'ignored' }
  | { kind: 'not_a_canary'; model: string; version: string }
  | { kind: 'failed'; model: string; error: unknown };

export interface AutomaticRollbackOptions {
  rules: readonly AlertRule[];
  policies: PolicyStore;
  logger: Logger;
  now?: () => number;
  /** Firings remembered so none is acted on twice; past it the oldest are forgotten (they resolved long ago). */
  maxRemembered?: number;
}

/** A policy's reason is kept short by the routers and the CLI alike. */
const MAX_REASON = 256;

/**
 * The version to go back to when `version` misbehaves: the serving version, the one the policy
 * weighs most (on a tie the older: a 50/50 canary's candidate is the newer version). Undefined
 * when `version` is not a canary: it has no weight, or it is the serving version itself.
 */
export function rollbackTarget(policy: TrafficPolicy__Output | undefined, version: string): string | undefined {
  const weighted = (policy?.weights ?? []).filter((w) => w.weight > 0).sort((a, b) => b.weight - a.weight || Number(a.version) - Number(b.version));
  if (!weighted.some((w) => w.version === version)) return undefined;
  const serving = weighted[0].version;
  return serving === version ? undefined : serving;
}

export class AutomaticRollback {
  private readonly rules: ReadonlyMap<string, AlertRule>;
  private readonly handled = new Set<string>();
  private readonly chains = new Map<string, Promise<RollbackOutcome>>();
  private readonly now: () => number;
  private readonly maxRemembered: number;

  constructor(private readonly options: AutomaticRollbackOptions) {
    this.rules = new Map(options.rules.filter((r) => r.rollback).map((r) => [r.name, r]));
    this.now = options.now ?? Date.now;
    this.maxRemembered = options.maxRemembered ?? 1024;
  }

  /** Whether any rule asks for rollbacks (the monitor opens the traffic bucket only then). */
  get active(): boolean {
    return this.rules.size > 0;
  }

  /** Acts on one alert transition; resolves with what it did (logged either way). */
  handle(alert: Alert__Output): Promise<RollbackOutcome> {
    const rule = this.rules.get(alert.rule);
    if (!rule || alert.state !== 'firing' || !alert.model || !alert.version) return Promise.resolve({ kind: 'ignored' });
    const firing = `${alert.fingerprint}:${alert.startedMs}`;
    if (this.handled.has(firing)) return Promise.resolve({ kind: 'ignored' });
    this.handled.add(firing);
    if (this.handled.size > this.maxRemembered) this.handled.delete(this.handled.values().next().value!);
    const previous = this.chains.get(alert.model) ?? Promise.resolve<RollbackOutcome>({ kind: 'ignored' });
    const next = previous.then(() => this.rollBack(rule, alert));
    this.chains.set(alert.model, next);
    void next.then(() => {
      if (this.chains.get(alert.model) === next) this.chains.delete(alert.model);
    });
    return next;
  }

  /** Resolves once every rollback started has been written (or has failed). */
  async settled(): Promise<void> {
    await Promise.all([...this.chains.values()]);
  }

  private async rollBack(rule: AlertRule, alert: Alert__Output): Promise<RollbackOutcome> {
    const { logger, policies } = this.options;
    const { model, version } = alert;
    const fields = { alert: rule.name, model, version, value: alert.value, threshold: alert.threshold, fingerprint: alert.fingerprint };
    try {
      // Decided from the policy as read, and stored only if it is still that one: an
      // operator's change in between is read again, never overwritten.
      for (let attempt = 1; ; attempt++) {
        const { policy: current, revision } = await policies.read(model);
        const to = rollbackTarget(current, version);
        if (!current || !to) {
          logger.info(fields, 'rollback rule fired for a version that is not a canary; the traffic policy is left as it is');
          return { kind: 'not_a_canary', model, version };
        }
        const policy: TrafficPolicy = {
          model,
          weights: [{ version: to, weight: 100 }],
          shadowVersions: current.shadowVersions,
          setBy: `rule:${rule.name}`,
          setAtMs: String(this.now()),
          reason: `rolled back from version ${version} to ${to}: ${alert.summary}`.slice(0, MAX_REASON),
        };
        if (await policies.replace(policy, revision)) {
          logger.warn({ ...fields, from: version, to, previous_weights: current.weights.map((w) => `${w.version}=${w.weight}`).join(','), set_by: policy.setBy }, 'automatic rollback: the traffic policy sends every unversioned request to the serving version');
          return { kind: 'rolled_back', model, from: version, to, policy };
        }
        if (attempt >= REPLACE_ATTEMPTS) throw new Error(`the traffic policy of ${model} kept changing while it was rolled back (${attempt} tries)`);
        logger.info(fields, 'the traffic policy changed while rolling back; reading it again');
      }
    } catch (error) {
      logger.error({ ...fields, err: error }, 'automatic rollback failed; the traffic policy is as it was');
      return { kind: 'failed', model, error };
    }
  }
}
