/**
 * The model versions this worker serves, loaded from the repository at start and changed
 * while serving: a load (of what the version policy selects, or of named versions) never
 * touches the serving versions until its replacement is ready, and one that fails leaves
 * them serving; an unload (or a replaced version) drains first. Loads and unloads run one at
 * a time, in the order asked.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '@infermesh/log';
import { notFound } from '@infermesh/grpc';
import { ModelNotInRepositoryError, modelFingerprint, modelNames, readRepositoryModel, type RepositoryModel } from './repository.js';
import { createSession, type ExecutionProvider } from './runtime.js';
import { sessionInThread } from './session-thread.js';
import { ServedModel, type ModelMonitoring } from './served-model.js';
import { DriftProfileError, loadDriftProfile } from './drift-profile.js';
import { classifierOutput } from './predicted-labels.js';
import { imagePipeline, selectVersions, tabularPipeline, type ModelConfig } from './model-config.js';
import { prependFeaturePrelude, prependImagePrelude } from './graph-prelude.js';
import { variableDims } from './variable-size.js';
import { loadPostprocessor } from './postprocess/postprocessor.js';

/**
 * The model as the worker runs it: the repository's ONNX model with its pipeline's
 * arithmetic prepended, so onnxruntime normalizes pixels (or standardizes features)
 * instead of a JavaScript loop, and only UINT8 pixels cross between processes.
 */
export function preparedModel(config: ModelConfig, onnx: Uint8Array): Uint8Array {
  const image = imagePipeline(config);
  if (image) {
    const variable = variableDims(config, image);
    return prependImagePrelude(onnx, {
      input: image.output, height: variable?.height ? null : image.height, width: variable?.width ? null : image.width, layout: image.layout, channelOrder: image.channel_order,
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
  /** Each version's session in its own worker thread (session-thread.ts); default true. */
  /** WORKER_SESSION_THREAD: every session in a thread, none, or by model size (sessionInThread). */
  sessionThread?: boolean | 'auto';
  logger: Logger;
  /**
   * How long a version being unloaded (or replaced) keeps serving after it is announced as
   * UNLOADING, before it waits for its requests in flight and is freed: routers stop sending
   * to it when the announcement reaches them, and requests they sent before still arrive.
   */
  unloadDelayMs?: number;
}

/** Triton's model states (RepositoryIndex). */
export type VersionState = 'LOADING' | 'READY' | 'UNLOADING' | 'UNAVAILABLE';

export interface ModelEntry {
  name: string;
  /** Empty for a model that could not be read at all (its config): no version is known. */
  version: string;
  state: VersionState;
  reason: string;
  model?: ServedModel;
  /** A pipeline's config (platform: pipeline): held without a session, announced for the router to execute. */
  pipeline?: ModelConfig;
}

/** Whether the version is loaded: a model's session, or a pipeline's config. */
const held = (e: ModelEntry): boolean => Boolean(e.model || e.pipeline);

/** What a load or unload did (ControlResponse). */
export interface ControlOutcome {
  status: 'OK' | 'NOT_FOUND' | 'FAILED';
  message: string;
  readyVersions: string[];
}

/** Models a repository is read for at most: a repository is the operator's, but a listing is still bounded. */
export const MAX_MODELS = 1024;

export class ModelRegistry {
  private readonly entries = new Map<string, ModelEntry[]>();
  /** The config text each model's serving versions were loaded with. */
  private readonly loadedConfig = new Map<string, string>();
  /** The repository as the last load or poll saw it, per model: a poll loads what changed. */
  private readonly fingerprints = new Map<string, string>();
  private queue: Promise<unknown> = Promise.resolve();
  private readonly retiring = new Set<Promise<void>>();
  private readonly changeListeners: (() => void)[] = [];

  constructor(private readonly options: RegistryOptions) {}

  /** Called after every change of a version's state (the worker announces it at once). */
  onChange(listener: () => void): void {
    this.changeListeners.push(listener);
  }

  /** Loads every model of the repository, each as its version policy says; failures are kept with their reason. */
  async loadAll(): Promise<void> {
    for (const name of await this.repositoryModels()) await this.load(name);
  }

  /**
   * Loads `versions` of the model, or (none named) what its version policy selects from the
   * repository now, unloading (after draining) the versions it no longer selects. A version
   * already serving is loaded again only when the config changed, and is replaced only once
   * the new one is ready. A load that fails leaves the serving versions serving.
   */
  load(name: string, versions: readonly string[] = [], requestedBy = ''): Promise<ControlOutcome> {
    return this.serially(() => this.loadNow(name, versions, requestedBy));
  }

  /** Unloads `versions` (every version when none named): each drains, then is freed. */
  unload(name: string, versions: readonly string[] = [], requestedBy = ''): Promise<ControlOutcome> {
    return this.serially(() => this.unloadNow(name, versions, requestedBy));
  }

  /** Loads each model whose config or version directories changed since it was last read; unloads models whose directory went away. */
  async poll(): Promise<void> {
    const present = new Set(await this.repositoryModels().catch((error: Error) => {
      this.options.logger.warn({ reason: error.message }, 'model repository not polled');
      return null;
    }) ?? [...this.entries.keys()]);
    for (const name of present) {
      const fingerprint = await modelFingerprint(this.options.repository, name);
      if (this.fingerprints.get(name) !== fingerprint) await this.load(name, [], 'repository poll');
    }
    for (const name of [...this.entries.keys()]) {
      if (!present.has(name) && this.entries.get(name)!.some(held)) await this.unload(name, [], 'repository poll');
    }
  }

  private serially<T>(run: () => Promise<T>): Promise<T> {
    const next = this.queue.then(run, run);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async repositoryModels(): Promise<string[]> {
    const names = await modelNames(this.options.repository, MAX_MODELS);
    return this.options.models.length ? names.filter((n) => this.options.models.includes(n)) : names;
  }

  private notify(): void {
    for (const listener of this.changeListeners) listener();
  }

  private async loadNow(name: string, versions: readonly string[], requestedBy: string): Promise<ControlOutcome> {
    const { logger } = this.options;
    if (this.options.models.length && !this.options.models.includes(name)) {
      return { status: 'NOT_FOUND', message: `model '${name}' is not among this worker's models (WORKER_MODELS)`, readyVersions: [] };
    }
    const fingerprint = await modelFingerprint(this.options.repository, name);
    let model;
    try {
      model = await readRepositoryModel(this.options.repository, name);
    } catch (error) {
      this.fingerprints.set(name, fingerprint);
      if (error instanceof ModelNotInRepositoryError) return { status: 'NOT_FOUND', message: error.message, readyVersions: this.versionsOf(name) };
      const reason = (error as Error).message;
      logger.error({ model: name, requested_by: requestedBy, reason }, 'model not loaded: the versions serving are kept');
      if (!this.entries.get(name)?.some(held)) this.entries.set(name, [{ name, version: '', state: 'UNAVAILABLE', reason }]);
      this.notify();
      return { status: 'FAILED', message: reason, readyVersions: this.versionsOf(name) };
    }
    const missing = versions.filter((v) => !model.versions.includes(v));
    if (missing.length) {
      return { status: 'FAILED', message: `model '${name}' has no version ${missing.join(', ')} in the repository (versions: ${model.versions.join(', ')})`, readyVersions: this.versionsOf(name) };
    }
    const wanted = versions.length ? [...versions] : selectVersions(model.config.version_policy, model.versions);
    if (wanted.length === 0) {
      // Unloading everything is an unload's job, not a load's: a policy that selects nothing is refused.
      this.fingerprints.set(name, fingerprint);
      return { status: 'FAILED', message: `model '${name}': version_policy selects none of the versions in the repository (${model.versions.join(', ')})`, readyVersions: this.versionsOf(name) };
    }
    const configChanged = this.loadedConfig.has(name) && this.loadedConfig.get(name) !== model.configText;
    // A model that could not be read before has no versions to keep.
    const entries = (this.entries.get(name) ?? []).filter((e) => e.version !== '');
    this.entries.set(name, entries);
    const failures: string[] = [];
    for (const version of wanted) {
      const serving = entries.find((e) => e.version === version && held(e) && e.state === 'READY');
      if (serving && !configChanged) continue;
      let entry = serving;
      if (!entry) {
        // A version that failed or was unloaded before is tried again in its place.
        const earlier = entries.findIndex((e) => e.version === version);
        if (earlier >= 0) entries.splice(earlier, 1);
        entry = { name, version, state: 'LOADING', reason: '' };
        entries.push(entry);
        entries.sort((a, b) => Number(a.version) - Number(b.version));
        this.notify();
      }
      if (model.config.platform === 'pipeline') {
        // Nothing to run here: the config was checked when it was read; the router executes it.
        Object.assign(entry, { state: 'READY', reason: '', pipeline: model.config, model: undefined });
        logger.info({ model: name, version, steps: model.config.pipeline?.steps.map((s) => s.name), requested_by: requestedBy }, 'pipeline loaded');
        continue;
      }
      try {
        const loaded = await this.loadVersion(model, version);
        const replaced = entry.model;
        Object.assign(entry, { state: 'READY', reason: '', model: loaded });
        if (replaced) this.retire(replaced);
        logger.info({ model: name, version, provider: loaded.provider, requested_by: requestedBy, replaced: Boolean(replaced) }, replaced ? 'model version reloaded with its changed config' : 'model loaded');
      } catch (error) {
        const reason = (error as Error).message;
        failures.push(`version ${version}: ${reason}`);
        if (!entry.model) Object.assign(entry, { state: 'UNAVAILABLE', reason });
        logger.error({ model: name, version, requested_by: requestedBy, reason, kept: Boolean(entry.model) }, entry.model ? 'model version not reloaded: the version serving is kept' : 'model failed to load');
      }
    }
    if (failures.length === 0) this.loadedConfig.set(name, model.configText);
    else if (!this.loadedConfig.has(name) && entries.some(held)) this.loadedConfig.set(name, model.configText);
    this.fingerprints.set(name, fingerprint);
    if (versions.length === 0) {
      // What the policy no longer selects goes, drained, once what it selects is in place.
      const dropped = entries.filter((e) => !wanted.includes(e.version));
      const draining = dropped.filter((e) => held(e) && e.state === 'READY');
      for (const e of dropped) if (!held(e)) entries.splice(entries.indexOf(e), 1);
      if (draining.length) await this.drain(name, draining, requestedBy);
    }
    this.notify();
    const readyVersions = this.versionsOf(name);
    if (failures.length) return { status: 'FAILED', message: `model '${name}': ${failures.join('; ')}`, readyVersions };
    return { status: 'OK', message: '', readyVersions };
  }

  private async unloadNow(name: string, versions: readonly string[], requestedBy: string): Promise<ControlOutcome> {
    const entries = this.entries.get(name);
    if (!entries) {
      const held = this.options.models.length === 0 || this.options.models.includes(name);
      const inRepository = held && (await modelNames(this.options.repository, MAX_MODELS)).includes(name);
      return inRepository
        ? { status: 'OK', message: `model '${name}' is not loaded here`, readyVersions: [] }
        : { status: 'NOT_FOUND', message: `model '${name}' is not served here`, readyVersions: [] };
    }
    const targets = entries.filter((e) => held(e) && e.state === 'READY' && (versions.length === 0 || versions.includes(e.version)));
    await this.drain(name, targets, requestedBy);
    this.notify();
    return { status: 'OK', message: '', readyVersions: this.versionsOf(name) };
  }

  /** Announces the versions UNLOADING, lets their requests finish, frees them: they stay listed UNAVAILABLE, "unloaded". */
  private async drain(name: string, targets: ModelEntry[], requestedBy: string): Promise<void> {
    if (targets.length === 0) return;
    for (const entry of targets) entry.state = 'UNLOADING';
    this.notify();
    this.options.logger.info({ model: name, versions: targets.map((e) => e.version), requested_by: requestedBy }, 'model versions draining');
    await Promise.all(targets.map(async (entry) => {
      await delay(this.options.unloadDelayMs ?? 0);
      await entry.model?.release();
      Object.assign(entry, { state: 'UNAVAILABLE', reason: 'unloaded', model: undefined, pipeline: undefined });
    }));
    this.options.logger.info({ model: name, versions: targets.map((e) => e.version) }, 'model versions unloaded');
  }

  /** A replaced model: requests already given it finish, then its session is freed. */
  private retire(model: ServedModel): void {
    const done = delay(this.options.unloadDelayMs ?? 0).then(() => model.release()).catch((error: unknown) => {
      this.options.logger.warn({ model: model.name, version: model.version, err: error }, 'replaced model version not released cleanly');
    });
    this.retiring.add(done);
    void done.finally(() => this.retiring.delete(done));
  }

  private async loadVersion(model: RepositoryModel, version: string): Promise<ServedModel> {
    const { logger } = this.options;
    const name = model.config.name;
    const bytes = preparedModel(model.config, await readFile(join(model.path, version, 'model.onnx')));
    const { session, provider } = await createSession(bytes, {
      providers: this.options.providers ?? model.config.execution_providers,
      intraOpThreads: this.options.intraOpThreads,
      deviceId: this.options.deviceId,
      thread: sessionInThread(this.options.sessionThread ?? 'auto', bytes.byteLength),
      instances: model.config.instance_group.count,
      logger: logger.child({ model: name, version }),
    });
    const missing = model.config.inputs.map((i) => i.name).filter((n) => !session.inputNames.includes(n));
    const missingOut = model.config.outputs.map((o) => o.name).filter((n) => !session.outputNames.includes(n));
    if (missing.length || missingOut.length) {
      await session.release();
      throw new Error(`config names tensors the model does not have: ${[...missing, ...missingOut].join(', ')} (model inputs: ${session.inputNames.join(', ')}; outputs: ${session.outputNames.join(', ')})`);
    }
    try {
      const postprocessor = await loadPostprocessor(model.config, join(model.path, version), session);
      return new ServedModel(model.config, version, session, provider, await this.monitoringOf(model, version), postprocessor);
    } catch (error) {
      await session.release();
      throw error;
    }
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

  /** The versions loaded (serving, or draining the requests routed to them before their unload was known). */
  ready(): ServedModel[] {
    return this.list().flatMap((e) => (e.model ? [e.model] : []));
  }

  /** Versions taking new requests. */
  versionsOf(name: string): string[] {
    return (this.entries.get(name) ?? []).filter((e) => held(e) && e.state === 'READY').map((e) => e.version);
  }

  /**
   * The requested version (also while it drains: routers sent those requests before they
   * knew), or the newest READY one; NOT_FOUND names what exists.
   */
  resolve(name: string, version: string): ServedModel {
    const entries = this.entries.get(name);
    if (!entries) throw notFound(`model '${name}' is not served here`);
    if (entries.some((e) => e.pipeline)) throw notFound(`model '${name}' is a pipeline: routers execute it, a worker only announces it`);
    if (!version) {
      const newest = entries.filter((e) => e.model && e.state === 'READY').at(-1);
      if (!newest?.model) throw notFound(`model '${name}' has no ready version`);
      return newest.model;
    }
    const entry = entries.find((e) => e.version === version);
    if (!entry) throw notFound(`model '${name}' has no version '${version}' (versions: ${entries.map((e) => e.version).join(', ')})`);
    if (!entry.model) {
      const why = entry.state === 'LOADING' ? 'is loading' : entry.reason === 'unloaded' ? 'is unloaded' : `failed to load: ${entry.reason}`;
      throw notFound(`model '${name}' version '${version}' ${why}`);
    }
    return entry.model;
  }

  async release(): Promise<void> {
    await this.queue;
    await Promise.all([...this.retiring]);
    await Promise.all(this.ready().map((m) => m.release()));
    this.entries.clear();
  }
}

const delay = (ms: number) => (ms > 0 ? new Promise<void>((resolve) => setTimeout(resolve, ms)) : Promise.resolve());
