/**
 * Reference values for a model's profile (profile.json, format in models/README.md), read
 * with the code that reads live inputs, so the two are the same numbers: rows are parsed by
 * the worker's rowsToTensor and read back with its tabularFeatureValues (FP32 rounding and
 * category indices included); images go through the preprocessor's preprocessImages (decode,
 * EXIF orientation, resize, luma statistics, padding excluded). `infermesh profile` and the
 * shipped models' profiles (profiles.ts) are built with it.
 */
import type { ImagePipeline__Output, ImageStatistics__Output } from '@infermesh/contracts';
import { preprocessImages } from '@infermesh/preprocessor';
import {
  buildDriftProfile, IMAGE_FEATURE_NAMES, imageFeatureValues, imagePipeline, imagePipelineMessage, MAX_PROFILE_FEATURES, rowsToTensor, tabularFeatureValues, tabularPipeline,
  type DriftProfile, type FeatureSummary, type ImagePipelineConfig, type ModelConfig, type TabularPipelineConfig,
} from '@infermesh/worker';

/** Data that cannot be profiled: names where (file, line, image) and what is wrong. */
export class ProfileDataError extends Error {
  override readonly name = 'ProfileDataError';
}

export interface ProfileOptions {
  source: string;
  created: string;
  bins?: number;
}

/** A profile's reference values, gathered one row or image at a time. */
export interface ReferenceValues {
  readonly kind: DriftProfile['kind'];
  /** The features profiled, in profile order. */
  readonly features: readonly string[];
  /** Inputs gathered so far. */
  readonly count: number;
  /** The profile of what was gathered; throws ProfileDataError when nothing was. */
  build(options: ProfileOptions): { profile: DriftProfile; summaries: FeatureSummary[] };
}

abstract class Gatherer {
  protected readonly columns: number[][];

  constructor(readonly features: readonly string[]) {
    this.columns = features.map(() => []);
  }

  abstract readonly kind: DriftProfile['kind'];

  get count(): number {
    return this.columns[0]?.length ?? 0;
  }

  build(options: ProfileOptions): { profile: DriftProfile; summaries: FeatureSummary[] } {
    if (this.count === 0) throw new ProfileDataError(`no ${this.kind === 'image' ? 'images' : 'rows'} to profile`);
    return buildDriftProfile({ kind: this.kind, ...options, features: this.features.map((name, f) => ({ name, values: this.columns[f] })) });
  }
}

/** The values of a tabular model's features (the first 64), row by row. */
export class TabularValues extends Gatherer implements ReferenceValues {
  readonly kind = 'tabular';
  private readonly spec: TabularPipelineConfig;

  constructor(config: ModelConfig) {
    const spec = tabularPipeline(config);
    if (!spec) throw new ProfileDataError(`model '${config.name}' has no tabular pipeline (preprocess.tabular) to profile rows for`);
    super(spec.features.slice(0, MAX_PROFILE_FEATURES).map((f) => f.name));
    this.spec = spec;
  }

  /** Features of the model left out of the profile (a profile holds at most 64). */
  get omitted(): number {
    return this.spec.features.length - this.features.length;
  }

  /** One row: its JSON bytes, as a client sends them. `where` names it in an error ("data.csv line 7"). */
  add(row: Buffer, where: string): void {
    let values: Float64Array[];
    try {
      const tensor = rowsToTensor(this.spec, { name: this.spec.input, datatype: 'BYTES', shape: [1], data: [row] });
      values = tabularFeatureValues(this.spec, this.features, tensor);
    } catch (error) {
      // The worker's message names "input 'row': row 0"; here the row is named by where it came from.
      throw new ProfileDataError(`${where}: ${(error as Error).message.replace(/^input '[^']*': row 0 /, '')}`);
    }
    values.forEach((v, f) => this.columns[f].push(v[0]));
  }
}

/** The statistics of an image model's inputs, image by image. */
export class ImageValues extends Gatherer implements ReferenceValues {
  readonly kind = 'image';
  private readonly pipeline: ImagePipeline__Output;
  private readonly input: string;

  constructor(config: ModelConfig) {
    const spec: ImagePipelineConfig | undefined = imagePipeline(config);
    if (!spec) throw new ProfileDataError(`model '${config.name}' has no image pipeline (preprocess.image) to profile images for`);
    super(IMAGE_FEATURE_NAMES);
    // imagePipelineMessage fills every field: it is the pipeline as the preprocessor receives it.
    this.pipeline = imagePipelineMessage(spec) as ImagePipeline__Output;
    this.input = spec.input;
  }

  /** One encoded PNG or JPEG. `where` names it in an error (its file). */
  async add(image: Buffer, where: string): Promise<ImageStatistics__Output> {
    let statistics: ImageStatistics__Output;
    try {
      [statistics] = (await preprocessImages(this.pipeline, this.input, [image])).statistics;
    } catch (error) {
      throw new ProfileDataError(`${where}: ${(error as Error).message.replace(/^input '[^']*': element 0 /, '')}`);
    }
    imageFeatureValues(IMAGE_FEATURE_NAMES, [statistics]).forEach((v, f) => this.columns[f].push(v[0]));
    return statistics;
  }
}

/** The gatherer of a model's kind of inputs. */
export function referenceValuesFor(config: ModelConfig): TabularValues | ImageValues {
  if (imagePipeline(config)) return new ImageValues(config);
  if (tabularPipeline(config)) return new TabularValues(config);
  throw new ProfileDataError(`model '${config.name}' has no preprocess section: a profile describes rows (preprocess.tabular) or images (preprocess.image), which the worker bins`);
}
