/**
 * The labelled evaluation sets shipped with the repository's models, read by `infermesh
 * evaluate` from models/<name>/evaluation/ (format in models/README.md):
 *
 * - iris: `rows.jsonl`, the 30 rows train-iris.ts holds out, one JSON object per line with the
 *   four measurements in cm and `label`, the true species;
 * - text-direction: PNG text lines and `labels.jsonl` (`{"file": ..., "label": ...}` per line),
 *   rendered by text-image.ts in several styles ("fonts"), sizes and lengths, half upside down.
 *
 * Both are deterministic (seeded), so `npm run evaluation-sets` regenerates the committed files
 * byte for byte and evaluation-sets.test.ts checks they are in sync with this code.
 */
import sharp from 'sharp';
import { mulberry32 } from '@infermesh/testing';
import type { IrisTraining } from './iris.js';
import { WORDS } from './profiles.js';
import { renderTextImage, type TextImageOptions } from './text-image.js';

/** The rows file of a tabular evaluation set, inside models/<name>/evaluation/. */
export const EVALUATION_ROWS_FILE = 'rows.jsonl';
/** The labels file of an image evaluation set, beside its images. */
export const EVALUATION_LABELS_FILE = 'labels.jsonl';

/** iris: the held-out rows, each with its true class, as `rows.jsonl` text. */
export function irisEvaluationRows(training: IrisTraining): string {
  return training.heldOutRows
    .map((row, n) => `${JSON.stringify({ ...row, label: training.classes[training.heldOut.labels[n]] })}\n`)
    .join('');
}

/**
 * The built-in font drawn in different ways: the bitmap glyphs are the same, but stroke weight,
 * letter spacing and blur change how a line looks to the classifier as much as a typeface does.
 */
export const TEXT_STYLES: Readonly<Record<string, (scale: number) => TextImageOptions>> = {
  regular: () => ({}),
  bold: (scale) => ({ bold: Math.min(scale - 1, Math.round(0.7 * scale)) }),
  thin: () => ({ bold: 0 }),
  wide: () => ({ tracking: 4 }),
  crisp: () => ({ blur: 0 }),
  soft: (scale) => ({ blur: 0.6 * scale }),
};

export const TEXT_DIRECTION_CLASSES = ['upright', 'rotated_180'] as const;

/** One line of the text-direction evaluation set. */
export interface EvaluationLine {
  file: string;
  text: string;
  style: string;
  /** Image pixels per font pixel: 3 to 6, lines 39 to 78 pixels high. */
  scale: number;
  label: (typeof TEXT_DIRECTION_CLASSES)[number];
}

/** `count` lines of 1 to 8 words in every style and size, half upside down; the same for the same seed. */
export function textDirectionEvaluationLines(count = 200, seed = 1979): EvaluationLine[] {
  const random = mulberry32(seed);
  const pick = (n: number) => Math.floor(random() * n);
  const styles = Object.keys(TEXT_STYLES);
  const width = String(count - 1).length;
  return Array.from({ length: count }, (_, n) => {
    const words = Array.from({ length: 1 + pick(8) }, () => WORDS[pick(WORDS.length)]);
    const style = styles[n % styles.length];
    const label = TEXT_DIRECTION_CLASSES[pick(2)];
    return { file: `${String(n).padStart(width, '0')}-${label === 'upright' ? 'up' : 'down'}.png`, text: words.join(' '), style, scale: 3 + pick(4), label };
  });
}

/**
 * The PNG of one evaluation line, as a 16-colour palette PNG: gray text on gray paper needs no
 * more, and it halves the committed set (about 400 KB for 200 lines instead of 850 KB).
 */
export async function renderEvaluationLine(line: EvaluationLine): Promise<Buffer> {
  const png = await renderTextImage(line.text, { ...TEXT_STYLES[line.style](line.scale), scale: line.scale, rotate180: line.label === 'rotated_180' });
  return sharp(png).png({ palette: true, colours: 16, dither: 0, compressionLevel: 9, effort: 10 }).toBuffer();
}

/** `labels.jsonl` text for the lines: file, label, and what the line shows (for reading results). */
export function evaluationLabels(lines: readonly EvaluationLine[]): string {
  return lines.map(({ file, label, text, style, scale }) => `${JSON.stringify({ file, label, text, style, scale })}\n`).join('');
}
