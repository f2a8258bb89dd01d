/**
 * infermesh evaluate: runs a served model version on a labelled set through the mesh, prints
 * accuracy, the confusion matrix, latency p50/p99, the model's size and its workers' memory, and writes the figures
 * beside the version (<repository>/<model>/<version>/evaluation.json).
 */
import { MODEL_REPOSITORY_DIR } from '@infermesh/models';
import { evaluateVersion, formatReport, measureWorkerMemory, writeEvaluation } from '../evaluate/index.js';

export interface EvaluateCommandOptions {
  model: string;
  /** Default: the newest version the mesh serves. */
  version?: string;
  /** Default: <repository>/<model>/evaluation/. */
  data?: string;
  /** Default: MODEL_REPOSITORY, else the repository's models/. */
  repository?: string;
  concurrency: number;
  requests: number;
  /** The router, HOST:PORT. */
  address: string;
  json: boolean;
}

/** `infermesh evaluate <model> ...`; returns the exit code (3 when some items failed). */
export async function evaluate(options: EvaluateCommandOptions, print: (line: string) => void = console.log, progress: (line: string) => void = console.error): Promise<number> {
  const { model } = options;
  const repository = options.repository ?? process.env.MODEL_REPOSITORY ?? MODEL_REPOSITORY_DIR;
  const report = await evaluateVersion({
    address: options.address,
    model,
    version: options.version,
    repository,
    data: options.data,
    concurrency: options.concurrency,
    requests: options.requests,
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
