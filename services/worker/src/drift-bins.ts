/**
 * Bins a request's inputs with its model's reference profile, where the values already are:
 * a tabular model's feature tensor (the rows parsed here, or the tensor a client sent, which is
 * in the same raw units), an image model's ImageStatistics from the preprocessor. One byte per
 * input and feature, row-major, features in profile order (PredictionRecord.drift_bins).
 *
 * The reference values of `infermesh profile` are read with the same functions
 * (tabularFeatureValues, IMAGE_FEATURES), so live and reference values are the same numbers.
 */
import type { Tensor } from '@infermesh/tensor';
import type { DriftReference, ImageStatistics__Output } from '@infermesh/contracts';
import { binIndex, IMAGE_FEATURES, isImageFeature, type ImageFeatureName, type LoadedProfile } from './drift-profile.js';
import { featureWidth } from './tabular-rows.js';
import { tabularPipeline, type ModelConfig, type TabularPipelineConfig } from './model-config.js';

/** Where a profiled feature sits in a row of the feature tensor. */
interface FeatureColumns {
  /** Its first column. */
  column: number;
  /** 1 for a number; the category count for a one-hot categorical feature. */
  width: number;
}

/** The columns of `names` in a row of `spec`'s feature tensor (names the pipeline lacks are an error). */
export function featureColumns(spec: TabularPipelineConfig, names: readonly string[]): FeatureColumns[] {
  const at = new Map<string, FeatureColumns>();
  let column = 0;
  for (const feature of spec.features) {
    const width = feature.categories?.length ? feature.categories.length : 1;
    at.set(feature.name, { column, width });
    column += width;
  }
  return names.map((name) => {
    const found = at.get(name);
    if (!found) throw new Error(`'${name}' is not a feature of the tabular pipeline`);
    return found;
  });
}

/**
 * The value a feature has in a row: the number itself, or, for a one-hot categorical feature,
 * the index of its category (the largest column, for a tensor a client sent).
 */
function valueAt(data: ArrayLike<number>, rowStart: number, { column, width }: FeatureColumns): number {
  const start = rowStart + column;
  if (width === 1) return data[start];
  let best = 0;
  for (let c = 1; c < width; c++) if (data[start + c] > data[start + best]) best = c;
  return best;
}

/** Each named feature's values over the rows of a feature tensor (what `infermesh profile` profiles). */
export function tabularFeatureValues(spec: TabularPipelineConfig, names: readonly string[], tensor: Tensor): Float64Array[] {
  const data = tensor.data as ArrayLike<number>;
  const rowWidth = featureWidth(spec);
  const rows = rowWidth > 0 ? data.length / rowWidth : 0;
  return featureColumns(spec, names).map((columns) => {
    const values = new Float64Array(rows);
    for (let r = 0; r < rows; r++) values[r] = valueAt(data, r * rowWidth, columns);
    return values;
  });
}

/** Each named statistic's values over images' statistics (what `infermesh profile` profiles). */
export function imageFeatureValues(names: readonly ImageFeatureName[], statistics: readonly ImageStatistics__Output[]): Float64Array[] {
  return names.map((name) => Float64Array.from(statistics, IMAGE_FEATURES[name]));
}

/** The profile as the heartbeat announces it (infermesh.v1.DriftReference). */
export function driftReferenceOf(loaded: LoadedProfile): DriftReference {
  return {
    features: loaded.profile.features.map((f) => ({ name: f.name, edges: f.edges, expected: f.expected })),
    profileId: loaded.profileId,
    rows: loaded.profile.rows,
  };
}

export class DriftBinner {
  readonly profileId: string;
  readonly reference: DriftReference;
  private readonly edges: Float64Array[];
  /** Tabular models: each feature's columns in a row, and the row's width. */
  private readonly columns?: FeatureColumns[];
  private readonly rowWidth: number = 0;
  /** Image models: each feature's value from an image's statistics. */
  private readonly statistics?: ((s: ImageStatistics__Output) => number)[];

  /** `loaded` was checked against `config` (checkProfileFitsModel). */
  constructor(loaded: LoadedProfile, config: ModelConfig) {
    const { profile } = loaded;
    this.profileId = loaded.profileId;
    this.reference = driftReferenceOf(loaded);
    this.edges = profile.features.map((f) => Float64Array.from(f.edges));
    const tabular = tabularPipeline(config);
    if (profile.kind === 'tabular' && tabular) {
      this.columns = featureColumns(tabular, profile.features.map((f) => f.name));
      this.rowWidth = featureWidth(tabular);
    } else {
      this.statistics = profile.features.map((f) => {
        if (!isImageFeature(f.name)) throw new Error(`'${f.name}' is not an image statistic`);
        return IMAGE_FEATURES[f.name];
      });
    }
  }

  get features(): number {
    return this.edges.length;
  }

  /** The bins of each row of a tabular model's feature tensor [rows, width]; undefined for an image model. */
  binRows(tensor: Tensor): Buffer | undefined {
    const columns = this.columns;
    if (!columns) return undefined;
    const data = tensor.data as ArrayLike<number>;
    const rows = data.length / this.rowWidth;
    if (!Number.isInteger(rows)) return undefined;
    const bins = Buffer.allocUnsafe(rows * columns.length);
    let at = 0;
    for (let r = 0, rowStart = 0; r < rows; r++, rowStart += this.rowWidth) {
      for (let f = 0; f < columns.length; f++) bins[at++] = binIndex(this.edges[f], valueAt(data, rowStart, columns[f]));
    }
    return bins;
  }

  /** The bins of each image of a request, from the preprocessor's statistics; undefined for a tabular model. */
  binImages(statistics: readonly ImageStatistics__Output[]): Buffer | undefined {
    const values = this.statistics;
    if (!values) return undefined;
    const bins = Buffer.allocUnsafe(statistics.length * values.length);
    let at = 0;
    for (const image of statistics) {
      for (let f = 0; f < values.length; f++) bins[at++] = binIndex(this.edges[f], values[f](image));
    }
    return bins;
  }
}
