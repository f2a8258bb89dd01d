/** The model versions this worker serves, loaded from the repository. */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '@infermesh/log';
import { notFound } from '@infermesh/grpc';
import { scanRepository, type RepositoryModel } from './repository.js';
import { createSession, type ExecutionProvider } from './runtime.js';
import { ServedModel, type ModelMonitoring } from './served-model.js';
import { DriftProfileError, loadDriftProfile } from './drift-profile.js';
import { classifierOutput } from './predicted-labels.js';
import { imagePipeline, tabularPipeline, type ModelConfig } from './model-config.js';
import { prependFeaturePrelude, prependImagePrelude } from './graph-prelude.js';

/**
 * The model as the worker runs it: the repository's ONNX model with its pipeline's
 * arithmetic prepended, so onnxruntime normalizes pixels (or standardizes features)
 * instead of a JavaScript loop, and only UINT8 pixels cross between processes.
 */
export function preparedModel(config: ModelConfig, onnx: Uint8Array): Uint8Array {
  const image = imagePipeline(config);
  if (image) {
    return prependImagePrelude(onnx, {
      input: image.output, height: image.height, width: image.width, layout: image.layout, channelOrder: image.channel_order,
      datatype: image.datatype, scale: image.scale, mean: image.mean, std: image.std,
    });
  }
  const tabular = tabularPipeline(config);
  if (tabular) {
    // One-hot columns are 0/1 indicators: no standardization.
    const mean = tabular.features.flatMap((f) => (f.categories?.length ? f.categories.map(() => 0) : [f.mean]));
    const std = tabular.features.flatMap((f) => (f.categories?.length ? f.categories.map(() => 1) : [f.std]));
    return prependFeaturePrelude(onnx, { input: tabular.output, mean, std, datatype: tabular.datatype });
  }
  return onnx;
}

export interface RegistryOptions {
  repository: string;
  /** Only these models (all when empty). */
  models: readonly string[];
  /** Overrides each model's execution_providers when set (a GPU worker). */
  providers?: readonly ExecutionProvider[];
  intraOpThreads?: number;
  deviceId?: number;
  logger: Logger;
}

export interface ModelEntry {
  name: string;
  version: string;
  state: 'READY' | 'FAILED';
  reason: string;
  model?: ServedModel;
}

export class ModelRegistry {
  private readonly entries = new Map<string, ModelEntry[]>();

  constructor(private readonly options: RegistryOptions) {}

  /** Loads every model (all versions) of the repository; failures are kept with their reason. */
  async loadAll(): Promise<void> {
    const { models, errors } = await scanRepository(this.options.repository, this.options.models);
    for (const error of errors) this.options.logger.error({ error }, 'model not loaded');
    for (const model of models) await this.loadModel(model);
  }

  private async loadModel(model: RepositoryModel): Promise<void> {
    const { logger } = this.options;
    const loaded: ModelEntry[] = [];
    for (const version of model.versions) {
      const name = model.config.name;
      try {
        const bytes = preparedModel(model.config, await readFile(join(model.path, version, 'model.onnx')));
        const { session, provider } = await createSession(bytes, {
          providers: this.options.providers ?? model.config.execution_providers,
          intraOpThreads: this.options.intraOpThreads,
          deviceId: this.options.deviceId,
          logger: logger.child({ model: name, version }),
        });
        const missing = model.config.inputs.map((i) => i.name).filter((n) => !session.inputNames.includes(n));
        const missingOut = model.config.outputs.map((o) => o.name).filter((n) => !session.outputNames.includes(n));
        if (missing.length || missingOut.length) {
          await session.release();
          throw new Error(`config names tensors the model does not have: ${[...missing, ...missingOut].join(', ')} (model inputs: ${session.inputNames.join(', ')}; outputs: ${session.outputNames.join(', ')})`);
        }
        const monitoring = await this.monitoringOf(model, version);
        loaded.push({ name, version, state: 'READY', reason: '', model: new ServedModel(model.config, version, session, provider, monitoring) });
        logger.info({ model: name, version, provider }, 'model loaded');
      } catch (error) {
        loaded.push({ name, version, state: 'FAILED', reason: (error as Error).message });
        logger.error({ model: name, version, err: error }, 'model failed to load');
      }
    }
    this.entries.set(model.config.name, loaded);
  }

  /**
   * The reference profile and classifier output of a model version. Neither keeps a model from
   * serving: a profile that cannot be used is logged (the file and what is wrong) and the
   * version is served without drift, as without a profile; so is a labelled output that
   * cannot name classes, without predicted labels.
   */
  private async monitoringOf(model: RepositoryModel, version: string): Promise<ModelMonitoring> {
    const { logger } = this.options;
    const name = model.config.name;
    const monitoring: ModelMonitoring = {};
    try {
      monitoring.profile = await loadDriftProfile(model.path, version, model.config);
      if (monitoring.profile) logger.info({ model: name, version, profile: monitoring.profile.file, profileId: monitoring.profile.profileId, features: monitoring.profile.profile.features.length }, 'drift profile loaded');
    } catch (error) {
      if (!(error instanceof DriftProfileError)) throw error;
      logger.warn({ model: name, version, reason: error.message }, 'drift profile not used: the model is served without drift');
    }
    const { classifier, problem } = classifierOutput(model.config);
    if (problem) logger.warn({ model: name, version, reason: problem }, 'class labels not used: the model is served without predicted labels');
    monitoring.classifier = classifier;
    return monitoring;
  }

  list(): ModelEntry[] {
    return [...this.entries.values()].flat();
  }

  ready(): ServedModel[] {
    return this.list().flatMap((e) => (e.model ? [e.model] : []));
  }

  versionsOf(name: string): string[] {
    return (this.entries.get(name) ?? []).filter((e) => e.model).map((e) => e.version);
  }

  /** The requested version, or the newest ready one; NOT_FOUND names what exists. */
  resolve(name: string, version: string): ServedModel {
    const entries = this.entries.get(name);
    if (!entries) throw notFound(`model '${name}' is not served here`);
    const ready = entries.filter((e) => e.model);
    if (!version) {
      const newest = ready.at(-1);
      if (!newest?.model) throw notFound(`model '${name}' has no ready version`);
      return newest.model;
    }
    const entry = entries.find((e) => e.version === version);
    if (!entry) throw notFound(`model '${name}' has no version '${version}' (versions: ${entries.map((e) => e.version).join(', ')})`);
    if (!entry.model) throw notFound(`model '${name}' version '${version}' failed to load: ${entry.reason}`);
    return entry.model;
  }

  async release(): Promise<void> {
    await Promise.all(this.ready().map((m) => m.release()));
    this.entries.clear();
  }
}
