/** Evaluation reports as text: one version's figures and confusion matrix, or versions side by side. */
import type { EvaluationReport } from './run.js';
import { formatWorkerMemory, mebibytes, WORKER_MEMORY_SCOPE } from './worker-memory.js';

function bytes(n: number | null): string {
  if (n === null) return 'n/a';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(2)} MiB`;
}

/** The figures of each report in a column: size, accuracy, p50/p99; `reports` are versions of one or more models. */
export function formatSideBySide(reports: readonly EvaluationReport[]): string[] {
  const rows: [string, (r: EvaluationReport) => string][] = [
    ['model file', (r) => bytes(r.modelBytes)],
    ['accuracy', (r) => `${r.accuracy.toFixed(4)} (${r.correct}/${r.items})`],
    ['errors', (r) => String(r.errors)],
    ['p50 ms', (r) => r.latency.p50Ms.toFixed(2)],
    ['p99 ms', (r) => r.latency.p99Ms.toFixed(2)],
    ['infer/s', (r) => r.latency.throughput.toFixed(1)],
    ['load', (r) => `${r.latency.requests} req at c=${r.latency.concurrency}`],
    ['worker memory', (r) => (r.workerMemory.measured ? `${mebibytes(r.workerMemory.maxBytes)}${r.workerMemory.workers.length > 1 ? ` (max of ${r.workerMemory.workers.length})` : ''}` : 'not measured')],
  ];
  const headers = reports.map((r) => `${r.model} v${r.version}`);
  const cells = rows.map(([, value]) => reports.map(value));
  const widths = headers.map((h, c) => Math.max(h.length, ...cells.map((row) => row[c].length)));
  const labelWidth = Math.max(...rows.map(([label]) => label.length));
  const line = (label: string, values: string[]) => `${label.padEnd(labelWidth)}  ${values.map((v, c) => v.padStart(widths[c])).join('  ')}`.trimEnd();
  return [line('', headers), ...rows.map(([label], i) => line(label, cells[i]))];
}

/** Rows are true classes, columns predicted ones. */
export function formatConfusion(report: EvaluationReport): string[] {
  const { classes, counts } = report.confusion;
  const first = Math.max('true \\ predicted'.length, ...classes.map((c) => c.length));
  const widths = classes.map((c, p) => Math.max(c.length, ...counts.map((row) => String(row[p]).length)));
  return [
    `${'true \\ predicted'.padEnd(first)}  ${classes.map((c, p) => c.padStart(widths[p])).join('  ')}`,
    ...classes.map((c, t) => `${c.padEnd(first)}  ${counts[t].map((n, p) => String(n).padStart(widths[p])).join('  ')}`),
  ];
}

/** The whole report of one version, as `infermesh evaluate` prints it. */
export function formatReport(report: EvaluationReport): string[] {
  return [
    `${report.model} version ${report.version} on ${report.dataset.items} labelled ${report.dataset.kind} (${report.dataset.path}), through the mesh at ${report.mesh.router} (${report.mesh.server} ${report.mesh.serverVersion})`,
    '',
    ...formatSideBySide([report]),
    '',
    ...formatConfusion(report),
    ...(report.firstError ? ['', `first error: ${report.firstError}`] : []),
    '',
    `worker memory: ${formatWorkerMemory(report.workerMemory)}${report.workerMemory.measured ? ` — ${WORKER_MEMORY_SCOPE}` : ''}`,
  ];
}
