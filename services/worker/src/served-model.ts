/**
 * One model version loaded into onnxruntime, behind its dynamic batcher. The session (in a
 * worker thread of its own by default, session-thread.ts) runs the repository's model with
 * its pipeline's arithmetic prepended (graph-prelude.ts), so
 * requests are checked against the served inputs (pixels, raw feature values), and
 * ModelMetadata shows what a client sends (clientInputs). A model with a reference profile
 * bins its inputs for drift (`drift`); one with a classifier output names each input's
 * predicted class (`classifier`). A model with output post-processing (postprocess/) answers
 * with its outputs instead of the graph's, per request after the batch is split; a model whose
 * image height or width is variable has its requests' pixels padded to the batch's largest
 * (variable-size.ts).
 */
import type * as ort from 'onnxruntime-node';
import { ARRAY_TYPE, TensorError, elementCount, formatShape, shapeMatches, type NumericArray, type Tensor } from '@infermesh/tensor';
import type { ModelMetadataResponse, ModelInferRequest_InferRequestedOutputTensor__Output } from '@infermesh/contracts';
import { DynamicBatcher, type BatchResult } from '@infermesh/batching';
import { clientInputs, fullShape, servedInputs, type ModelConfig, type TensorConfig } from './model-config.js';
import { fromOrtTensor, toOrtTensor, type ExecutionProvider, type ModelSession } from './runtime.js';
import { ModelStats } from './model-stats.js';
import { applyClassification } from './classification.js';
import { DriftBinner } from './drift-bins.js';
import type { LoadedProfile } from './drift-profile.js';
import { predictedLabels, type ClassifierOutput } from './predicted-labels.js';
import type { OutputPostprocessor } from './postprocess/postprocessor.js';
import type { ImageGeometry } from './postprocess/geometry.js';
import { imagePipeline, type ImagePipelineConfig } from './model-config.js';
import { padPixel, paddedFrame, stackPadded, variableDims, wholeTensorGeometry, widthGroups, type VariableDims } from './variable-size.js';

/** An output a request asks for, with its parameters (Triton's `classification`). */
export type RequestedOutput = Pick<ModelInferRequest_InferRequestedOutputTensor__Output, 'name' | 'parameters'>;

export interface InferOptions {
  /** Aborts the request while it waits (client gone, deadline passed). */
  signal?: AbortSignal;
  /** Time already spent queued before this worker (at the router), counted as queue time. */
  queuedNs?: number;
  /** process.hrtime.bigint() after which the request is refused rather than run. */
  deadlineNs?: bigint;
  /** Where each image is in the pixel tensor and its size as sent (preprocessed images); else the whole tensor is the image. */
  geometry?: ImageGeometry[];
}

export interface InferResult {
  outputs: Tensor[];
  queueNs: number;
  computeNs: number;
  batchSize: number;
  /** The predicted class label of each input; empty for a model without a classifier output. */
  predictedLabels: string[];
}

/** What a model is watched with: its reference profile (checked against its config) and its classifier output. */
export interface ModelMonitoring {
  profile?: LoadedProfile;
  classifier?: ClassifierOutput;
}

interface Job {
  tensors: Map<string, Tensor>;
  items: number;
  outputs: readonly string[];
  geometry?: ImageGeometry[];
}

/** The image input whose height or width varies, and how a batch pads it. */
interface VariableImage {
  spec: ImagePipelineConfig;
  dims: VariableDims;
  pad: [number, number, number];
}

export class ServedModel {
  readonly stats = new ModelStats();
  /** The tensors the session takes (the pipeline's output as pixels or raw values). */
  readonly inputs: TensorConfig[];
  /** Bins inputs with the model's reference profile; absent when it has none. */
  readonly drift?: DriftBinner;
  /** The output whose highest score is the predicted class; absent when no output has labels. */
  readonly classifier?: ClassifierOutput;
  private readonly batcher: DynamicBatcher<Job, Tensor[]>;
  private readonly outputNames: string[];
  private readonly variable?: VariableImage;

  /** Why this version can run nothing any more (its session's threads ended); undefined while it can. */
  get failure(): Error | undefined {
    return this.session.failure;
  }

  constructor(
    readonly config: ModelConfig,
    readonly version: string,
    private readonly session: ModelSession,
    readonly provider: ExecutionProvider,
    monitoring: ModelMonitoring = {},
    /** Makes the answered outputs of the graph's (config.yaml `postprocess`). */
    readonly postprocessor?: OutputPostprocessor,
  ) {
    this.outputNames = postprocessor ? postprocessor.outputs.map((o) => o.name) : config.outputs.map((o) => o.name);
    const image = imagePipeline(config);
    const dims = variableDims(config, image);
    if (image && dims) this.variable = { spec: image, dims, pad: padPixel(image) };
    this.inputs = servedInputs(config);
    this.drift = monitoring.profile ? new DriftBinner(monitoring.profile, config) : undefined;
    this.classifier = monitoring.classifier;
    const dynamic = config.dynamic_batching;
    this.batcher = new DynamicBatcher<Job, Tensor[]>(
      {
        maxBatchSize: config.max_batch_size,
        preferredBatchSizes: dynamic?.preferred_batch_size ?? [],
        maxQueueDelayUs: dynamic?.max_queue_delay_microseconds ?? 0,
        maxQueueSize: dynamic?.max_queue_size ?? 1024,
        instances: config.instance_group.count,
        dynamic: dynamic !== undefined,
      },
      (jobs, items) => this.execute(jobs, items),
      // A variable-width model records each of its session runs itself (a batch may be several).
      (batchSize, computeNs) => {
        if (!this.variable?.dims.width) this.stats.recordRun(batchSize, computeNs);
      },
    );
  }

  get name(): string {
    return this.config.name;
  }

  get queueDepth(): number {
    return this.batcher.depth;
  }

  get inFlight(): number {
    return this.batcher.inFlight;
  }

  metadata(versions: string[]): ModelMetadataResponse {
    return {
      name: this.name,
      versions,
      platform: this.config.platform,
      inputs: clientInputs(this.config),
      outputs: this.outputMetadata(),
    };
  }

  /** The outputs a client gets (ModelMetadata, heartbeats): the post-processed ones where the model has post-processing. */
  outputMetadata(): { name: string; datatype: string; shape: string[] }[] {
    if (this.postprocessor) return this.postprocessor.outputs.map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape.map(String) }));
    return this.config.outputs.map((t) => ({ name: t.name, datatype: t.datatype, shape: fullShape(this.config, t).map(String) }));
  }

  /**
   * Checks the request's tensors against the config and returns the number of items
   * (the batch dimension; 1 for models that do not batch).
   */
  validate(tensors: readonly Tensor[], requestedOutputs: readonly string[]): number {
    const byName = new Map(tensors.map((t) => [t.name, t]));
    for (const tensor of tensors) {
      if (!this.inputs.some((i) => i.name === tensor.name)) {
        throw new TensorError(`unexpected input '${tensor.name}' for model '${this.name}' (inputs: ${this.inputs.map((i) => i.name).join(', ')})`);
      }
    }
    let items: number | undefined;
    for (const input of this.inputs) {
      const tensor = byName.get(input.name);
      if (!tensor) throw new TensorError(`missing input '${input.name}' for model '${this.name}'`);
      if (tensor.datatype !== input.datatype) {
        throw new TensorError(`input '${input.name}': datatype ${tensor.datatype}, model '${this.name}' expects ${input.datatype}`);
      }
      const expected = fullShape(this.config, input);
      if (!shapeMatches(tensor.shape, expected)) {
        throw new TensorError(`input '${input.name}': shape ${formatShape(tensor.shape)}, model '${this.name}' expects ${formatShape(expected)} (-1 = any)`);
      }
      if (this.variable && input.name === this.variable.spec.output) this.checkImageSize(tensor);
      if (this.config.max_batch_size > 0) {
        const batch = tensor.shape[0];
        if (batch < 1 || batch > this.config.max_batch_size) {
          throw new TensorError(`input '${input.name}': batch size ${batch}, model '${this.name}' accepts 1 to ${this.config.max_batch_size}`);
        }
        if (items !== undefined && items !== batch) throw new TensorError(`inputs disagree on the batch size (${items} and ${batch})`);
        items = batch;
      }
    }
    for (const output of requestedOutputs) {
      if (!this.outputNames.includes(output)) {
        throw new TensorError(`requested output '${output}' is not an output of model '${this.name}' (outputs: ${this.outputNames.join(', ')})`);
      }
    }
    return items ?? 1;
  }

  /** A variable-size image tensor is bounded by the pipeline's frame: the work and memory of a batch follow from it. */
  private checkImageSize(tensor: Tensor): void {
    const { spec } = this.variable!;
    const [height, width] = tensor.shape.slice(-3, -1);
    if (height < 1 || width < 1 || height > spec.height || width > spec.width) {
      throw new TensorError(`input '${tensor.name}': ${height} x ${width} pixels (height x width), model '${this.name}' accepts 1 to ${spec.height} x 1 to ${spec.width}`);
    }
  }

  /**
   * Validates, queues and runs one request; applies Triton's classification to the outputs
   * asked for with it. A request refused after it ran (classification of an output that
   * has no scores) counts as a failure in ModelStatistics, not as a success.
   */
  async infer(tensors: readonly Tensor[], requested: readonly RequestedOutput[], options: InferOptions = {}): Promise<InferResult> {
    const items = this.validate(tensors, requested.map((r) => r.name));
    const answered = requested.length ? requested.map((r) => r.name) : this.outputNames;
    // The classifier's scores are computed for the predicted labels even when the client asked only for other outputs.
    const classifier = this.classifier?.name;
    const extra = classifier !== undefined && !answered.includes(classifier);
    const job: Job = { tensors: new Map(tensors.map((t) => [t.name, t])), items, outputs: extra ? [...answered, classifier] : answered, geometry: options.geometry };
    let result: BatchResult<Tensor[]>;
    let outputs: Tensor[];
    let labels: string[] = [];
    try {
      result = await this.batcher.submit(job, items, { signal: options.signal, queuedNs: options.queuedNs, deadline: options.deadlineNs });
      const scores = classifier === undefined ? undefined : result.output.find((o) => o.name === classifier);
      if (scores) labels = predictedLabels(this.classifier!, scores, this.config.max_batch_size > 0);
      outputs = applyClassification(this.config, requested, extra ? result.output.filter((o) => o.name !== classifier) : result.output);
    } catch (error) {
      this.stats.recordFailure();
      throw error;
    }
    this.stats.recordSuccess(items, result.queueNs, result.computeNs);
    return { outputs, queueNs: result.queueNs, computeNs: result.computeNs, batchSize: result.batchSize, predictedLabels: labels };
  }

  /** Waits for queued and running work to finish. */
  idle(): Promise<void> {
    return this.batcher.idle();
  }

  async release(): Promise<void> {
    await this.batcher.idle();
    await this.session.release();
  }

  /**
   * Runs a batch. A model whose image width varies runs it as groups of jobs of similar width
   * (variable-size.ts widthGroups), each one session run padded to its own widest, so a short
   * line is neither padded to a long one's width (compute) nor read differently for it
   * (SVTR mixes the whole line). Groups run one after another on one session, side by side on
   * several (instance_group.count); each run is recorded with its own size and time.
   */
  private async execute(jobs: Job[], items: number): Promise<Tensor[][]> {
    const variable = this.variable;
    if (!variable?.dims.width) return this.runJobs(jobs, items);
    const widths = jobs.map((job) => job.tensors.get(variable.spec.output)!.shape[2]);
    const groups = jobs.length === 1 ? [[0]] : widthGroups(widths, variable.spec.min_width ?? 1);
    const answers = new Array<Tensor[]>(jobs.length);
    const runGroup = async (group: number[]): Promise<void> => {
      const own = group.map((i) => jobs[i]);
      const size = own.reduce((sum, job) => sum + job.items, 0);
      const started = process.hrtime.bigint();
      const outputs = await this.runJobs(own, size);
      this.stats.recordRun(size, Number(process.hrtime.bigint() - started));
      group.forEach((i, n) => (answers[i] = outputs[n]));
    };
    if (this.config.instance_group.count > 1) await Promise.all(groups.map(runGroup));
    else for (const group of groups) await runGroup(group);
    return answers;
  }

  /** One session run of `jobs`, padded to their largest image where its size varies; the outputs split back per job. */
  private async runJobs(jobs: Job[], items: number): Promise<Tensor[][]> {
    const feeds: Record<string, ort.Tensor> = {};
    let frame: { height: number; width: number } | undefined;
    for (const input of this.inputs) {
      const parts = jobs.map((job) => job.tensors.get(input.name)!);
      if (this.variable && input.name === this.variable.spec.output) {
        // Every request padded to the batch's largest image (and rounded up): see variable-size.ts.
        const { spec, dims, pad } = this.variable;
        frame = paddedFrame(spec, dims, parts.map((p) => ({ height: p.shape[1], width: p.shape[2] })));
        feeds[input.name] = toOrtTensor('UINT8', [items, frame.height, frame.width, 3], stackPadded(parts, frame.height, frame.width, pad));
        continue;
      }
      if (jobs.length === 1) {
        feeds[input.name] = toOrtTensor(parts[0].datatype, parts[0].shape, parts[0].data);
        continue;
      }
      const shape = [items, ...parts[0].shape.slice(1)];
      if (input.datatype === 'BYTES') {
        feeds[input.name] = toOrtTensor('BYTES', shape, parts.flatMap((p) => p.data as Buffer[]));
        continue;
      }
      const stacked = new ARRAY_TYPE[input.datatype](elementCount(shape));
      let offset = 0;
      for (const part of parts) {
        (stacked as Float32Array).set(part.data as Float32Array, offset);
        offset += (part.data as NumericArray).length;
      }
      feeds[input.name] = toOrtTensor(input.datatype, shape, stacked);
    }
    const post = this.postprocessor;
    const wanted = post ? [post.rawOutput] : [...new Set(jobs.flatMap((job) => job.outputs))];
    const results = await this.session.run(feeds, wanted);
    const decoded = wanted.map((name) => ({ name, ...fromOrtTensor(results[name]) }));
    // Split each output along the batch dimension, in request order.
    let row = 0;
    return jobs.map((job) => {
      const from = row;
      row += job.items;
      const own = jobs.length === 1 ? decoded : decoded.map((d) => {
        const perItem = elementCount(d.shape.slice(1));
        const data = Array.isArray(d.data) ? d.data.slice(from * perItem, row * perItem) : (d.data as NumericArray).subarray(from * perItem, row * perItem);
        return { name: d.name, datatype: d.datatype, shape: [job.items, ...d.shape.slice(1)], data };
      });
      if (!post) return own.filter((d) => job.outputs.includes(d.name));
      const image = this.variable ? job.tensors.get(this.variable.spec.output) : undefined;
      const geometry = job.geometry ?? (image ? wholeTensorGeometry(image) : []);
      return post.apply(own[0], { frame: frame ?? { height: 0, width: 0 }, items: geometry }).filter((d) => job.outputs.includes(d.name));
    });
  }
}
