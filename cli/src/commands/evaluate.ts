/**
 * infermesh evaluate: runs a served model version on a labelled set through the mesh, prints
 * accuracy, the confusion matrix, latency p50/p99, the model's size and its workers' memory, and writes the figures
 * beside the version (<repository>/<model>/<version>/evaluation.json).
 */
import { parseArgs } from 'node:util';
import { MODEL_REPOSITORY_DIR } from '@infermesh/models';
import { DEFAULT_ROUTER } from '../client.js';
import { evaluateVersion, formatReport, measureWorkerMemory, writeEvaluation } from '../evaluate/index.js';

export const EVALUATE_USAGE = `usage: infermesh evaluate <model> [options]

Runs a version of the model on a labelled set through the mesh (the router's ModelInfer) and
reports accuracy, the confusion matrix, latency p50/p99, the model file's size and the resident
memory of the workers serving the version (the whole worker process, every model it holds, from
their heartbeats on NATS: NATS_URL with NATS_USER etc., else the mesh \`infermesh up\` runs here);
writes them to <repository>/<model>/<version>/evaluation.json.

  --version V         the version (default: the newest version the mesh serves)
  --data PATH         the labelled set: a .jsonl file of rows, each with "label", or a folder of
                      images with labels.jsonl ({"file": ..., "label": ...} per line)
                      (default <repository>/<model>/evaluation/)
  --repository DIR    the model repository (default MODEL_REPOSITORY, else the repository's models/)
  --concurrency N     requests in flight (default 4)
  --requests N        requests of the timed latency load, cycling through the set (default 200)
  --address HOST:PORT the router (default ${DEFAULT_ROUTER})
  --json              print the report as JSON`;

/** `infermesh evaluate <model> ...`; returns the exit code (3 when some items failed). */
export async function evaluate(args: string[], print: (line: string) => void = console.log, progress: (line: string) => void = console.error): Promise<number> {
  const { values: options, positionals } = parseArgs({
    args,
    options: {
      version: { type: 'string' },
      data: { type: 'string' },
      repository: { type: 'string' },
      concurrency: { type: 'string', default: '4' },
      requests: { type: 'string', default: '200' },
      address: { type: 'string', default: DEFAULT_ROUTER },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    allowPositionals: true,
  });
  if (options.help) {
    print(EVALUATE_USAGE);
    return 0;
  }
  const [model, ...extra] = positionals;
  if (!model || extra.length) throw new Error(`name one model\n\n${EVALUATE_USAGE}`);
  const whole = (name: string, value: string) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive whole number, got '${value.slice(0, 64)}'`);
    return n;
  };
  const repository = options.repository ?? process.env.MODEL_REPOSITORY ?? MODEL_REPOSITORY_DIR;
  const report = await evaluateVersion({
    address: options.address,
    model,
    version: options.version,
    repository,
    data: options.data,
    concurrency: whole('concurrency', options.concurrency),
    requests: whole('requests', options.requests),
    log: progress,
    workerMemory: (name, version) => {
      progress(`${name} version ${version}: reading worker memory from heartbeats on NATS (1.5 s)`);
      return measureWorkerMemory(name, version);
    },
  });
  const written = await writeEvaluation(repository, report);
  if (options.json) print(JSON.stringify(report, null, 2));
  else {
    for (const line of formatReport(report)) print(line);
    print(`wrote ${written}`);
  }
  return report.errors > 0 || report.latency.errors > 0 ? 3 : 0;
}
