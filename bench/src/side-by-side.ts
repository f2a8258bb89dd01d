/**
 * What the side-by-side benchmarks (bench:ocr, bench:dataflow, bench:protocols) share: the
 * options every one takes (--duration, --rounds, --levels, --report), checked, and the CPU a
 * process has used.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

export interface RoundOptions {
  durationMs: number;
  rounds: number;
  levels: number[];
  /** Where results.json goes (resolved against the directory npm was run from), if asked. */
  report?: string;
}

/** The common options as parseArgs gives them (strings), checked. */
export function roundOptions(values: { duration: string; rounds: string; levels: string; report?: string }): RoundOptions {
  const durationMs = Number(values.duration) * 1000;
  const rounds = Number(values.rounds);
  const levels = values.levels.split(',').map(Number);
  if (!(durationMs > 0 && durationMs <= 3_600_000)) throw new RangeError(`--duration must be seconds from 0 to 3600, got ${values.duration}`);
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 20) throw new RangeError(`--rounds must be a whole number from 1 to 20, got ${values.rounds}`);
  if (levels.some((c) => !Number.isInteger(c) || c < 1 || c > 256)) throw new RangeError(`--levels must be concurrencies from 1 to 256, got ${values.levels}`);
  // npm runs the scripts in bench/; paths given on the command line are the caller's.
  const report = values.report === undefined ? undefined : resolve(process.env.INIT_CWD ?? process.cwd(), values.report);
  return { durationMs, rounds, levels, report };
}

const TICKS_PER_SECOND = 100;

/** CPU time (user + system) process `pid` has used, in ms, from /proc/<pid>/stat. */
export function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND) * 1000;
}

/** The middle value (of an even count, the mean of the two middle ones). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}
