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
import { parseArgs } from 'node:util';
import { natsConnectOptions } from '@infermesh/bus';
import type { TrafficPolicy__Output } from '@infermesh/contracts';
import { MODEL_REPOSITORY_DIR } from '@infermesh/models';
import { DEFAULT_MONITOR, runningMesh } from '../client.js';
import { formatSideBySide, type EvaluationReport } from '../evaluate/index.js';
import { monitorFigures } from '../rollout/monitor-figures.js';
import { decideGate, failedSummary, formatGate, passedSummary, readEvaluation, readGate, GateError, type GateDecision } from '../rollout/gate.js';
import {
  candidateOf, canaryWeights, checkVersion, parseCanaryPercent, promotedWeights, repositoryVersions, rolledBackWeights, RolloutError, servingVersionOf, shadowsWith, shadowsWithout,
} from '../rollout/plan.js';
import { applyTraffic, describePolicy, type TrafficChange, type TrafficTarget } from './traffic.js';

export const ROLLOUT_USAGE = `usage: infermesh rollout <model> [--version V] [--canary P% | --promote | --rollback | --shadow]
                        [--serving V] [--force] [--by WHO] [--repository DIR] [--nats URL] [--monitor HOST:PORT]

Moves a candidate version into production through the model's traffic policy, behind the
evaluation gate of its config.yaml (gate: {accuracy_drop: 0.01, p99_ms: 50}: the candidate's
evaluation.json accuracy at least the serving version's minus 0.01, its p99 at most 50 ms;
run infermesh evaluate on both versions first).

  --version V --canary P%  P % of unversioned requests to V, the rest to the serving version
  --version V --promote    100 % to V (the gate is checked again)
  --rollback               100 % back to the serving version (--version: the candidate, default the newest weighted)
  --version V --shadow     V gets a copy of every request, never answers a client (no gate)
  (no option)              the policy, the evaluations side by side, the gate's decision, and the
                           monitor's requests, errors and p99 per version with the alerts firing
  --serving V              the version serving now (default: the other version the policy weighs most,
                           else the newest other version in the repository)
  --force                  past a failed gate; said on stderr and kept in the policy's reason
  --by WHO                 who asks (default user@host)`;

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
    for (const line of describePolicy(model, current)) print(line);
    const named = [...new Set([...(current?.weights ?? []).map((w) => w.version), ...(current?.shadowVersions ?? [])])].sort((a, b) => Number(a) - Number(b));
    const reports = (await Promise.all(named.map((v) => readEvaluation(repository, model, v).catch(() => undefined)))).filter((r): r is EvaluationReport => r !== undefined);
    const missing = named.filter((v) => !reports.some((r) => r.version === v));
    if (reports.length > 0) print('', ...formatSideBySide(reports));
    if (missing.length > 0) print(`no evaluation.json for version ${missing.join(', ')} (infermesh evaluate ${model} --version V)`);
    const candidate = candidateOf(current);
    if (candidate) {
      const serving = options.serving ?? servingVersionOf(current, candidate, versions);
      const gate = await gateFor(repository, model, candidate, serving).catch((error: unknown) => (error instanceof GateError ? error : Promise.reject(error)));
      print('', gate instanceof GateError ? `gate: ${gate.message}` : `gate for version ${candidate}:`);
      if (!(gate instanceof GateError)) print(...formatGate(gate.decision, candidate, serving));
    }
    if (options.monitor) print('', ...(await monitorFigures(options.monitor, model)));
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
  for (const line of describePolicy(model, policy)) print(line);
  return 0;
}

export async function rollout(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      version: { type: 'string' }, canary: { type: 'string' }, promote: { type: 'boolean', default: false }, rollback: { type: 'boolean', default: false },
      shadow: { type: 'boolean', default: false }, serving: { type: 'string' }, force: { type: 'boolean', default: false }, by: { type: 'string' },
      repository: { type: 'string' }, nats: { type: 'string' }, monitor: { type: 'string', default: DEFAULT_MONITOR }, help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help || positionals.length !== 1) {
    console.log(ROLLOUT_USAGE);
    return values.help ? 0 : 2;
  }
  const [model] = positionals;
  const chosen = [values.canary !== undefined, values.promote, values.rollback, values.shadow].filter(Boolean).length;
  if (chosen > 1) throw new RolloutError('choose one of --canary, --promote, --rollback, --shadow');
  const version = values.version === undefined ? undefined : checkVersion(values.version);
  const needVersion = (): string => {
    if (!version) throw new RolloutError('name the candidate with --version V');
    return version;
  };
  const action: RolloutOptions['action'] = values.canary !== undefined
    ? { kind: 'canary', version: needVersion(), percent: parseCanaryPercent(values.canary) }
    : values.promote ? { kind: 'promote', version: needVersion() }
      : values.rollback ? { kind: 'rollback', version }
        : values.shadow ? { kind: 'shadow', version: needVersion() } : { kind: 'status' };
  const running = values.nats || process.env.NATS_URL ? undefined : runningMesh();
  const natsUrl = values.nats ?? process.env.NATS_URL ?? running?.nats.url ?? 'nats://127.0.0.1:4222';
  return runRollout({
    target: { natsUrl, connectOptions: natsConnectOptions(running?.nats.settings ?? process.env), prefix: process.env.NATS_SUBJECT_PREFIX ?? 'infermesh' },
    repository: values.repository ?? process.env.MODEL_REPOSITORY ?? MODEL_REPOSITORY_DIR,
    model,
    action,
    serving: values.serving === undefined ? undefined : checkVersion(values.serving, '--serving'),
    monitor: values.monitor,
    force: values.force,
    by: values.by ?? `${userInfo().username}@${hostname()}`,
  });
}
