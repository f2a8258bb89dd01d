/**
 * infermesh rollout <model>: takes a candidate version to production through the model's
 * traffic policy (infermesh traffic's bucket, which every router watches), behind the
 * evaluation gate of its config.yaml:
 *
 *   --version V --canary 10%   serving/candidate 90/10, once the gate passes
 *   --version V --promote      every unversioned request to V, once the gate passes
 *   --rollback                 every unversioned request back to the serving version
 *   --version V --shadow       V gets a copy of every request (no gate: clients never see it)
 *   (no option)                the policy, the versions' evaluations side by side, the gate
 *
 * Who asked (--by, default user@host) and why go with the policy; a gate passed by --force
 * says so in the policy's reason and on stderr.
 */
import { hostname, userInfo } from 'node:os';
import { natsConnectOptions } from '@infermesh/bus';
import type { TrafficPolicy__Output } from '@infermesh/contracts';
import { MODEL_REPOSITORY_DIR } from '@infermesh/models';
import { runningMesh } from '../client.js';
import { formatSideBySide, type EvaluationReport } from '../evaluate/index.js';
import { monitorFigures } from '../rollout/monitor-figures.js';
import { decideGate, failedSummary, formatGate, passedSummary, readEvaluation, readGate, GateError, type GateDecision } from '../rollout/gate.js';
import {
  candidateOf, canaryWeights, checkVersion, promotedWeights, repositoryVersions, rolledBackWeights, RolloutError, servingVersionOf, shadowsWith, shadowsWithout,
} from '../rollout/plan.js';
import { applyTraffic, describePolicy, type TrafficChange, type TrafficTarget } from './traffic.js';

/** Exit code when the gate refuses. */
export const GATE_REFUSED = 4;
const MAX_BY = 128;
const MAX_REASON = 256;

export interface RolloutOptions {
  target: TrafficTarget;
  repository: string;
  model: string;
  action: { kind: 'canary'; version: string; percent: number } | { kind: 'promote'; version: string } | { kind: 'rollback'; version?: string } | { kind: 'shadow'; version: string } | { kind: 'status' };
  serving?: string;
  /** The monitor, HOST:PORT, whose figures the status shows; none: no monitor figures. */
  monitor?: string;
  force?: boolean;
  by: string;
  /** The result as one JSON document instead of lines (warnings stay on stderr). */
  json?: boolean;
  print?: (line: string) => void;
  warn?: (line: string) => void;
}

/** The gate for `candidate` against `serving`: both evaluations are read when a rule needs them. */
async function gateFor(repository: string, model: string, candidate: string, serving: string | undefined): Promise<{ decision: GateDecision; reports: EvaluationReport[] }> {
  const gate = await readGate(repository, model);
  if (!gate) return { decision: { passed: true, checks: [] }, reports: [] };
  const candidateReport = await readEvaluation(repository, model, candidate);
  if (gate.accuracyDrop !== undefined && !serving) throw new GateError(`the gate compares version ${candidate}'s accuracy with the serving version's, and ${model} has no other version (--serving V)`);
  const servingReport = gate.accuracyDrop !== undefined && serving ? await readEvaluation(repository, model, serving) : undefined;
  return { decision: decideGate(gate, candidateReport, servingReport), reports: servingReport ? [servingReport, candidateReport] : [candidateReport] };
}

/** Runs one rollout step; returns the exit code (GATE_REFUSED when the gate refused it). */
export async function runRollout(options: RolloutOptions): Promise<number> {
  const { target, repository, model, action } = options;
  const printLine = options.print ?? console.log;
  // One call per line: console.log would join the lines of one call with spaces.
  const print = (...lines: string[]) => {
    for (const line of lines) printLine(line);
  };
  const warn = options.warn ?? console.error;
  const by = options.by.slice(0, MAX_BY);
  const current = await applyTraffic(target, model, undefined, by);
  const versions = await repositoryVersions(repository, model);

  if (action.kind === 'status') {
    const named = [...new Set([...(current?.weights ?? []).map((w) => w.version), ...(current?.shadowVersions ?? [])])].sort((a, b) => Number(a) - Number(b));
    const reports = (await Promise.all(named.map((v) => readEvaluation(repository, model, v).catch(() => undefined)))).filter((r): r is EvaluationReport => r !== undefined);
    const missing = named.filter((v) => !reports.some((r) => r.version === v));
    const candidate = candidateOf(current);
    const serving = candidate ? options.serving ?? servingVersionOf(current, candidate, versions) : undefined;
    const gate = candidate ? await gateFor(repository, model, candidate, serving).catch((error: unknown) => (error instanceof GateError ? error : Promise.reject(error))) : undefined;
    const monitor = options.monitor ? await monitorFigures(options.monitor, model) : undefined;
    if (options.json) {
      const decision = gate instanceof GateError ? { error: gate.message } : gate?.decision ?? null;
      print(JSON.stringify({ model, policy: current ?? null, evaluations: reports, missingEvaluations: missing, candidate: candidate ?? null, serving: serving ?? null, gate: decision, monitor: monitor ?? null }, null, 2));
      return 0;
    }
    for (const line of describePolicy(model, current)) print(line);
    if (reports.length > 0) print('', ...formatSideBySide(reports));
    if (missing.length > 0) print(`no evaluation.json for version ${missing.join(', ')} (infermesh evaluate ${model} --version V)`);
    if (candidate && gate) {
      print('', gate instanceof GateError ? `gate: ${gate.message}` : `gate for version ${candidate}:`);
      if (!(gate instanceof GateError)) print(...formatGate(gate.decision, candidate, serving));
    }
    if (monitor) print('', ...monitor);
    return 0;
  }

  let change: TrafficChange;
  let reason: string;
  if (action.kind === 'shadow') {
    change = { shadows: shadowsWith(current, action.version) };
    reason = `shadow version ${action.version}`;
  } else if (action.kind === 'rollback') {
    const candidate = action.version ?? candidateOf(current);
    if (!candidate) throw new RolloutError(`${model} has no canary to roll back (its policy weighs fewer than two versions): name the version to leave with --version V`);
    const serving = options.serving ?? servingVersionOf(current, candidate, []);
    if (!serving) throw new RolloutError(`the policy of ${model} names no version beside ${candidate} to go back to: name it with --serving V`);
    change = { weights: rolledBackWeights(serving), shadows: shadowsWithout(current, candidate) };
    reason = `rolled back from version ${candidate} to ${serving}`;
  } else {
    if (!versions.includes(action.version)) throw new RolloutError(`the repository ${repository} has no version ${action.version} of ${model} (versions: ${versions.join(', ') || 'none'})`);
    const serving = options.serving ?? servingVersionOf(current, action.version, versions);
    if (action.kind === 'canary' && !serving) throw new RolloutError(`a canary shares requests with the serving version, and ${model} has no version but ${action.version} (--serving V)`);
    const { decision } = await gateFor(repository, model, action.version, serving);
    let gateNote = passedSummary(decision);
    if (!decision.passed) {
      const table = formatGate(decision, action.version, serving);
      if (!options.force) {
        warn(`the gate refuses version ${action.version} of ${model}:`);
        for (const line of table) warn(line);
        warn('(infermesh evaluate again after a fix, or --force to go past the gate)');
        if (options.json) print(JSON.stringify({ model, version: action.version, serving: serving ?? null, refused: true, gate: decision }, null, 2));
        return GATE_REFUSED;
      }
      gateNote = `forced past the gate: ${failedSummary(decision)}`;
      warn(`${gateNote} (by ${by})`);
      for (const line of table) warn(line);
    }
    if (action.kind === 'canary') {
      change = { weights: canaryWeights(serving!, action.version, action.percent), shadows: shadowsWithout(current, action.version) };
      reason = `canary ${action.percent} % to version ${action.version} beside ${serving}; ${gateNote}`;
    } else {
      change = { weights: promotedWeights(serving, action.version), shadows: shadowsWithout(current, action.version) };
      reason = `promoted version ${action.version}${serving ? ` over ${serving}` : ''}; ${gateNote}`;
    }
  }
  const policy: TrafficPolicy__Output | undefined = await applyTraffic(target, model, change, by, reason.slice(0, MAX_REASON));
  if (options.json) print(JSON.stringify({ model, policy: policy ?? null }, null, 2));
  else for (const line of describePolicy(model, policy)) print(line);
  return 0;
}

export interface RolloutCommandOptions {
  model: string;
  version?: string;
  /** Percent of unversioned requests to the candidate, 1 to 99. */
  canary?: number;
  promote: boolean;
  rollback: boolean;
  shadow: boolean;
  serving?: string;
  force: boolean;
  by?: string;
  repository?: string;
  nats?: string;
  monitor?: string;
  json: boolean;
}

/** `infermesh rollout <model>`: one action (at most) from the command line. Returns the exit code. */
export async function rollout(options: RolloutCommandOptions): Promise<number> {
  const { model } = options;
  const chosen = [options.canary !== undefined, options.promote, options.rollback, options.shadow].filter(Boolean).length;
  if (chosen > 1) throw new RolloutError('choose one of --canary, --promote, --rollback, --shadow');
  const version = options.version === undefined ? undefined : checkVersion(options.version);
  const needVersion = (): string => {
    if (!version) throw new RolloutError('name the candidate with --version V');
    return version;
  };
  const action: RolloutOptions['action'] = options.canary !== undefined
    ? { kind: 'canary', version: needVersion(), percent: options.canary }
    : options.promote ? { kind: 'promote', version: needVersion() }
      : options.rollback ? { kind: 'rollback', version }
        : options.shadow ? { kind: 'shadow', version: needVersion() } : { kind: 'status' };
  const running = options.nats || process.env.NATS_URL ? undefined : runningMesh();
  const natsUrl = options.nats ?? process.env.NATS_URL ?? running?.nats.url ?? 'nats://127.0.0.1:4222';
  return runRollout({
    target: { natsUrl, connectOptions: natsConnectOptions(running?.nats.settings ?? process.env), prefix: process.env.NATS_SUBJECT_PREFIX ?? 'infermesh' },
    repository: options.repository ?? process.env.MODEL_REPOSITORY ?? MODEL_REPOSITORY_DIR,
    model,
    action,
    serving: options.serving === undefined ? undefined : checkVersion(options.serving, '--serving'),
    monitor: options.monitor,
    force: options.force,
    by: options.by ?? `${userInfo().username}@${hostname()}`,
    json: options.json,
  });
}
