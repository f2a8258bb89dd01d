/**
 * A model's reference profile (models/<name>/<version>/profile.json, else models/<name>/profile.json):
 * for each profiled feature of its inputs, a histogram of its training or evaluation data with
 * fixed bin edges. The worker bins live inputs with the edges (drift-bins.ts) and announces the
 * profile in its heartbeat (infermesh.v1.DriftReference); the monitor compares the two.
 *
 * Bin i of a value v is the number of edges <= v: bin 0 is (-inf, edges[0]), bin k-1 is
 * [edges[k-2], +inf). `infermesh profile` writes these files (profile-builder.ts).
 */
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import type { ImageStatistics__Output } from '@infermesh/contracts';
import { imagePipeline, tabularPipeline, type ModelConfig } from './model-config.js';

export const PROFILE_FORMAT = 1;
export const PROFILE_FILE = 'profile.json';
/** Bounds of a profile, so a heartbeat stays small and a bin fits one byte. */
export const MAX_PROFILE_FEATURES = 64;
export const MAX_PROFILE_BINS = 32;
/** 64 features of 32 bins are about 60 KB of JSON; anything far larger is not a profile. */
export const MAX_PROFILE_BYTES = 1024 * 1024;
const MAX_FEATURE_NAME = 128;
/** How far the expected shares of a feature may sum from 1 (they are rounded when written). */
const SHARE_SUM_TOLERANCE = 1e-6;

/** The statistics of an image that an image profile may name, read from the preprocessor's ImageStatistics. */
export const IMAGE_FEATURES = {
  'image.width': (s: ImageStatistics__Output) => s.width,
  'image.height': (s: ImageStatistics__Output) => s.height,
  'image.aspect_ratio': (s: ImageStatistics__Output) => (s.height > 0 ? s.width / s.height : 0),
  'image.brightness': (s: ImageStatistics__Output) => s.brightness,
  'image.contrast': (s: ImageStatistics__Output) => s.contrast,
} as const satisfies Record<string, (s: ImageStatistics__Output) => number>;
export type ImageFeatureName = keyof typeof IMAGE_FEATURES;
export const IMAGE_FEATURE_NAMES = Object.keys(IMAGE_FEATURES) as ImageFeatureName[];

export function isImageFeature(name: string): name is ImageFeatureName {
  return Object.hasOwn(IMAGE_FEATURES, name);
}

const featureReferenceSchema = z
  .object({
    name: z.string().min(1).max(MAX_FEATURE_NAME),
    edges: z.array(z.number()).max(MAX_PROFILE_BINS - 1),
    expected: z.array(z.number().min(0).max(1)).min(1).max(MAX_PROFILE_BINS),
  })
  .superRefine((feature, ctx) => {
    if (feature.expected.length !== feature.edges.length + 1) {
      ctx.addIssue({ code: 'custom', path: ['expected'], message: `${feature.edges.length} edges make ${feature.edges.length + 1} bins, expected has ${feature.expected.length} shares` });
    }
    if (feature.edges.some((edge, i) => i > 0 && !(edge > feature.edges[i - 1]))) {
      ctx.addIssue({ code: 'custom', path: ['edges'], message: 'edges must be strictly ascending' });
    }
    const sum = feature.expected.reduce((a, b) => a + b, 0);
    if (Math.abs(sum - 1) > SHARE_SUM_TOLERANCE) ctx.addIssue({ code: 'custom', path: ['expected'], message: `shares sum to ${sum}, not 1` });
  });

export const driftProfileSchema = z
  .object({
    format: z.literal(PROFILE_FORMAT),
    kind: z.enum(['tabular', 'image']),
    rows: z.number().int().positive(),
    source: z.string().max(1000),
    created: z.union([z.iso.datetime(), z.iso.date()]),
    features: z.array(featureReferenceSchema).min(1).max(MAX_PROFILE_FEATURES),
  })
  .superRefine((profile, ctx) => {
    const seen = new Set<string>();
    profile.features.forEach((feature, i) => {
      if (seen.has(feature.name)) ctx.addIssue({ code: 'custom', path: ['features', i, 'name'], message: `feature '${feature.name}' appears twice` });
      seen.add(feature.name);
    });
  });

export type DriftProfile = z.infer<typeof driftProfileSchema>;
export type FeatureReferenceJson = DriftProfile['features'][number];

/** A profile file that cannot be used: names the file and what is wrong with it. */
export class DriftProfileError extends Error {
  override readonly name = 'DriftProfileError';
}

/** A profile as the worker holds it: the parsed file, its digest, where it came from. */
export interface LoadedProfile {
  profile: DriftProfile;
  /** The first 16 hex digits of the SHA-256 of the file's bytes. */
  profileId: string;
  file: string;
}

export function profileIdOf(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex').slice(0, 16);
}

/** Parses and validates a profile file's bytes; throws a DriftProfileError naming `file` and each problem. */
export function parseDriftProfile(bytes: Uint8Array, file: string): LoadedProfile {
  if (bytes.byteLength > MAX_PROFILE_BYTES) throw new DriftProfileError(`${file} is ${bytes.byteLength} bytes, over the ${MAX_PROFILE_BYTES}-byte limit of a profile`);
  let document: unknown;
  try {
    document = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch (error) {
    throw new DriftProfileError(`${file} is not valid JSON: ${(error as Error).message}`);
  }
  const parsed = driftProfileSchema.safeParse(document);
  if (!parsed.success) {
    const issues = parsed.error.issues.slice(0, 5).map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`);
    throw new DriftProfileError(`${file} is not a valid profile: ${issues.join('; ')}`);
  }
  return { profile: parsed.data, profileId: profileIdOf(bytes), file };
}

/**
 * Refuses a profile that does not describe what this model's requests carry: a tabular profile
 * names features of the model's tabular pipeline, an image profile names image statistics of
 * a model with an image pipeline. (Categorical features are binned by their category's index.)
 */
export function checkProfileFitsModel(loaded: LoadedProfile, config: ModelConfig): void {
  const { profile, file } = loaded;
  const tabular = tabularPipeline(config);
  const image = imagePipeline(config);
  if (profile.kind === 'tabular') {
    if (!tabular) throw new DriftProfileError(`${file} is a tabular profile, but model '${config.name}' has no tabular pipeline (preprocess.tabular) whose rows it could bin`);
    const known = new Set(tabular.features.map((f) => f.name));
    const unknown = profile.features.filter((f) => !known.has(f.name)).map((f) => `'${f.name}'`);
    if (unknown.length) throw new DriftProfileError(`${file} names ${unknown.join(', ')}, not features of model '${config.name}' (features: ${[...known].join(', ')})`);
  } else {
    if (!image) throw new DriftProfileError(`${file} is an image profile, but model '${config.name}' has no image pipeline (preprocess.image)`);
    const unknown = profile.features.filter((f) => !isImageFeature(f.name)).map((f) => `'${f.name}'`);
    if (unknown.length) throw new DriftProfileError(`${file} names ${unknown.join(', ')}, not image statistics (${IMAGE_FEATURE_NAMES.join(', ')})`);
  }
}

/**
 * The profile of one version of a model: `<modelDir>/<version>/profile.json`, else
 * `<modelDir>/profile.json`; undefined when neither exists. Throws a DriftProfileError when the
 * file found cannot be used (unreadable, too large, invalid, or not this model's).
 */
export async function loadDriftProfile(modelDir: string, version: string, config: ModelConfig): Promise<LoadedProfile | undefined> {
  for (const file of [join(modelDir, version, PROFILE_FILE), join(modelDir, PROFILE_FILE)]) {
    const size = await stat(file).then((s) => (s.isFile() ? s.size : undefined), () => undefined);
    if (size === undefined) continue;
    // Checked before reading: a huge file is refused without holding it.
    if (size > MAX_PROFILE_BYTES) throw new DriftProfileError(`${file} is ${size} bytes, over the ${MAX_PROFILE_BYTES}-byte limit of a profile`);
    const bytes = await readFile(file).catch((error: Error) => {
      throw new DriftProfileError(`cannot read ${file}: ${error.message}`);
    });
    const loaded = parseDriftProfile(bytes, file);
    checkProfileFitsModel(loaded, config);
    return loaded;
  }
  return undefined;
}

/** The bin of `value`: how many `edges` are <= it (binary search). NaN falls in bin 0. */
export function binIndex(edges: ArrayLike<number>, value: number): number {
  let low = 0;
  let high = edges.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (edges[middle] <= value) low = middle + 1;
    else high = middle;
  }
  return low;
}
