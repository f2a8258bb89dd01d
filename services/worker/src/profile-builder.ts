/**
 * Builds a reference profile (drift-profile.ts) from reference values: each feature's bin edges
 * from its quantiles (deciles by default), and the share of reference values in each bin.
 * `infermesh profile` and the shipped models' scripts (models/src) write profiles with it.
 *
 * An edge is placed halfway between the quantile value and the next smaller reference value,
 * not on the quantile itself. Both put every reference value in the same bin (no reference
 * value lies between the two), but a live value equal to a reference value then never sits on
 * an edge, so rounding it (a row's 5.1 becomes 5.0999999 as FP32) cannot move it to the
 * bin below. A feature with few distinct values gets fewer bins: equal edges are dropped, and
 * every bin holds some reference values. The midpoint is written with the fewest digits that
 * keep it within a thousandth of the gap (4.95, not 4.949999809265137 between two FP32 values).
 */
import { binIndex, driftProfileSchema, MAX_PROFILE_BINS, MAX_PROFILE_FEATURES, PROFILE_FORMAT, type DriftProfile, type FeatureReferenceJson } from './drift-profile.js';

export const DEFAULT_PROFILE_BINS = 10;

/** A reference value set that cannot be profiled (empty, not finite, too many features or bins). */
export class ProfileBuildError extends Error {
  override readonly name = 'ProfileBuildError';
}

export interface FeatureValues {
  name: string;
  values: ArrayLike<number>;
}

export interface ProfileInput {
  kind: DriftProfile['kind'];
  /** What data the values came from, for the reader of the file. */
  source: string;
  /** ISO date or date-time. A fixed one keeps a regenerated file (and its profile id) identical. */
  created: string;
  features: readonly FeatureValues[];
  /** Bins per feature at most (quantiles); default 10. */
  bins?: number;
}

/** What a person reads about a profiled feature. */
export interface FeatureSummary {
  name: string;
  bins: number;
  min: number;
  median: number;
  max: number;
}

function sortedValues({ name, values }: FeatureValues): Float64Array {
  if (values.length === 0) throw new ProfileBuildError(`feature '${name}' has no values`);
  const sorted = Float64Array.from(values);
  const bad = sorted.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) throw new ProfileBuildError(`feature '${name}': value ${bad} is ${sorted[bad]}, not a finite number`);
  return sorted.sort();
}

/** The first index of `value` in ascending `sorted` (binary search). */
function firstIndexOf(sorted: Float64Array, value: number): number {
  let low = 0;
  let high = sorted.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (sorted[middle] < value) low = middle + 1;
    else high = middle;
  }
  return low;
}

/** The midpoint of `below` < `above` with the fewest significant digits within a thousandth of their gap. */
function roundedMidpoint(below: number, above: number): number {
  // Halved separately: (a + b) / 2 overflows for values near the largest double.
  const middle = below / 2 + above / 2;
  const tolerance = (above - below) * 1e-3;
  for (let digits = 1; digits < 17; digits++) {
    const rounded = Number(middle.toPrecision(digits));
    if (rounded > below && rounded < above && Math.abs(rounded - middle) <= tolerance) return rounded;
  }
  return middle;
}

/** Inner edges from the quantiles of ascending `sorted`: at most `bins - 1`, strictly ascending. */
export function quantileEdges(sorted: Float64Array, bins: number): number[] {
  const edges: number[] = [];
  const n = sorted.length;
  for (let k = 1; k < bins; k++) {
    const quantile = sorted[Math.floor((k * n) / bins)];
    const first = firstIndexOf(sorted, quantile);
    if (first === 0) continue; // the smallest value: an edge below it would leave its bin empty
    const below = sorted[first - 1];
    let edge = roundedMidpoint(below, quantile);
    if (!(edge > below)) edge = quantile; // adjacent doubles: no value lies between them
    if (edges.length === 0 || edge > edges[edges.length - 1]) edges.push(edge);
  }
  return edges;
}

/** One feature's reference: quantile edges and the share of its values in each bin. */
export function featureReference(feature: FeatureValues, bins = DEFAULT_PROFILE_BINS): { reference: FeatureReferenceJson; summary: FeatureSummary } {
  if (!Number.isInteger(bins) || bins < 2 || bins > MAX_PROFILE_BINS) throw new ProfileBuildError(`bins must be a whole number from 2 to ${MAX_PROFILE_BINS}, got ${bins}`);
  const sorted = sortedValues(feature);
  const edges = quantileEdges(sorted, bins);
  const counts = new Array<number>(edges.length + 1).fill(0);
  for (const value of sorted) counts[binIndex(edges, value)]++;
  const n = sorted.length;
  return {
    reference: { name: feature.name, edges, expected: counts.map((count) => count / n) },
    summary: { name: feature.name, bins: edges.length + 1, min: sorted[0], median: sorted[Math.floor((n - 1) / 2)], max: sorted[n - 1] },
  };
}

/** A whole profile from each feature's reference values, checked against the schema the worker loads with. */
export function buildDriftProfile(input: ProfileInput): { profile: DriftProfile; summaries: FeatureSummary[] } {
  const { features, bins = DEFAULT_PROFILE_BINS } = input;
  if (features.length === 0) throw new ProfileBuildError('no features to profile');
  if (features.length > MAX_PROFILE_FEATURES) throw new ProfileBuildError(`${features.length} features, a profile holds at most ${MAX_PROFILE_FEATURES}`);
  const rows = features[0].values.length;
  const uneven = features.find((f) => f.values.length !== rows);
  if (uneven) throw new ProfileBuildError(`feature '${uneven.name}' has ${uneven.values.length} values, '${features[0].name}' has ${rows}`);
  const built = features.map((feature) => featureReference(feature, bins));
  const profile = driftProfileSchema.parse({
    format: PROFILE_FORMAT,
    kind: input.kind,
    rows,
    source: input.source,
    created: input.created,
    features: built.map((b) => b.reference),
  });
  return { profile, summaries: built.map((b) => b.summary) };
}

/**
 * The file's text: one feature per line, so a diff of a regenerated profile reads feature by
 * feature. Deterministic: the same profile always gives the same bytes (and profile id).
 */
export function serializeDriftProfile(profile: DriftProfile): string {
  const { features, ...head } = profile;
  const lines = Object.entries(head).map(([key, value]) => `  ${JSON.stringify(key)}: ${JSON.stringify(value)},`);
  const featureLines = features.map((f, i) => `    ${JSON.stringify({ name: f.name, edges: f.edges, expected: f.expected })}${i < features.length - 1 ? ',' : ''}`);
  return `{\n${lines.join('\n')}\n  "features": [\n${featureLines.join('\n')}\n  ]\n}\n`;
}
