/**
 * The original and the optimized version evaluated through a running mesh with `infermesh
 * evaluate`'s own code, once the workers serve the new version (they pick up a new version
 * folder when they next poll the repository, WORKER_REPOSITORY_POLL_MS).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { ModelReadyResponse__Output } from '@infermesh/contracts';
import { call, routerClient } from '../client.js';
import { evaluateVersion, type EvaluationReport } from '../evaluate/index.js';

export class VersionNotServedError extends Error {
  override name = 'VersionNotServedError';
}

const READY_POLL_MS = 500;

/** Resolves once the router has a worker ready for `version` of `model`; throws after `timeoutMs`. */
export async function waitUntilServed(address: string, model: string, version: string, timeoutMs: number): Promise<void> {
  const client = routerClient(address);
  try {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const { ready } = await call<{ name: string; version: string }, ModelReadyResponse__Output>(client, client.ModelReady, { name: model, version });
      if (ready) return;
      if (Date.now() >= until) throw new VersionNotServedError(`the mesh at ${address} did not serve version ${version} of '${model}' within ${Math.round(timeoutMs / 1000)} s (do the workers read this repository, and poll it?)`);
      await sleep(READY_POLL_MS);
    }
  } finally {
    client.close();
  }
}

export interface MeshEvaluationOptions {
  address: string;
  repository: string;
  model: string;
  versions: readonly string[];
  waitMs: number;
  requests?: number;
  concurrency?: number;
}

/** Each version's evaluation report, in the order given. */
export async function evaluateThroughMesh(options: MeshEvaluationOptions): Promise<EvaluationReport[]> {
  const reports: EvaluationReport[] = [];
  for (const version of options.versions) {
    await waitUntilServed(options.address, options.model, version, options.waitMs);
    reports.push(await evaluateVersion({ address: options.address, model: options.model, version, repository: options.repository, requests: options.requests, concurrency: options.concurrency }));
  }
  return reports;
}
