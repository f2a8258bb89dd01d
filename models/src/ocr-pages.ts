/**
 * Generated document pages with their ground truth, to judge an OCR reading: each page is 1–6
 * lines of English words, digits and a few punctuation marks, set in one of the DejaVu fonts at
 * 18–40 px, some lines upside down (rotated 180° in place, as a page scanned with a line pasted
 * the wrong way). Each line's text and its ink box on the page are known exactly, so the mesh and
 * any reference can be scored against the truth, not only against each other.
 *
 * Pages are a pure function of the seed (a seeded generator picks everything) and of the fonts
 * and the text renderer (Pango inside sharp's pinned libvips): the same on every machine with
 * the fonts-dejavu-core files. Text is drawn from the recognizer's dictionary's ASCII part
 * (ppocr_keys_v1.txt is Chinese and ASCII).
 */
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';

/** A point [x, y] in page pixels. */
export type Point = [number, number];

export interface OcrPageLine {
  text: string;
  /** The ink's box: corners clockwise from top-left, as the ocr model's `boxes` output. */
  box: [Point, Point, Point, Point];
  /** Drawn rotated 180° in place. */
  rotated180: boolean;
  font: string;
  /** Font size (em) in pixels. */
  size: number;
}

export interface OcrPage {
  /** `page-00.png`, ... */
  name: string;
  png: Buffer;
  width: number;
  height: number;
  /** Top to bottom. */
  lines: OcrPageLine[];
}

/** How a page's lines are turned: none, one in two (the 2nd, 4th, ...), or one of them. */
export type Rotation = 'none' | 'alternate' | 'one';

export interface OcrPageOptions {
  /** Pages to make. Default 16. */
  count?: number;
  /** Default 11. */
  seed?: number;
  /** Rotation of page i: default cycles none, alternate, none, one. */
  rotation?: (page: number) => Rotation;
}

/** The fonts, by the family Pango knows them as, and their files in Debian's fonts-dejavu-core and fonts-dejavu-extra (Condensed). */
export const OCR_PAGE_FONTS: readonly { font: string; file: string }[] = [
  { font: 'DejaVu Sans', file: 'DejaVuSans.ttf' },
  { font: 'DejaVu Sans Bold', file: 'DejaVuSans-Bold.ttf' },
  { font: 'DejaVu Serif', file: 'DejaVuSerif.ttf' },
  { font: 'DejaVu Serif Bold', file: 'DejaVuSerif-Bold.ttf' },
  { font: 'DejaVu Sans Mono', file: 'DejaVuSansMono.ttf' },
  { font: 'DejaVu Sans Condensed', file: 'DejaVuSansCondensed.ttf' },
];
const FONT_DIR = '/usr/share/fonts/truetype/dejavu';

const MAX_PAGES = 1000;
const WIDTHS = [640, 720, 800, 880, 960];
const MIN_SIZE = 18;
const MAX_SIZE = 40;

const WORDS = (
  'the model page line text read time world number order report table paper light river stone water ' +
  'green small large early later north south house field market village letter winter summer garden ' +
  'window office station bridge engine signal system server worker router packet stream memory ' +
  'simple quick brown lazy clear quiet ready total value price count level point metal glass ' +
  'music story power money street school minute second hour month year morning evening ' +
  'Monday Friday London Paris Berlin Oslo Kyoto Boston Cairo Lima April June October ' +
  'Alice Bob Carol Dave Emma Frank Grace Henry Iris Jack Kate Leo'
).split(' ');

/** Mulberry32: a small seeded generator, enough to pick layouts reproducibly. */
function generator(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Random = () => number;
const integer = (random: Random, min: number, max: number) => min + Math.floor(random() * (max - min + 1));
const pick = <T>(random: Random, items: readonly T[]): T => items[Math.floor(random() * items.length)];

/** One token: mostly words, some numbers, a few with punctuation. */
function token(random: Random): string {
  const r = random();
  if (r < 0.12) return String(integer(random, 1, 9999));
  if (r < 0.16) return `${integer(random, 1, 99)}.${integer(random, 0, 9)}${integer(random, 0, 9)}`;
  if (r < 0.19) return `${integer(random, 10, 28)}-${integer(random, 10, 99)}`;
  const word = pick(random, WORDS);
  const p = random();
  if (p < 0.07) return `${word},`;
  if (p < 0.11) return `${word}.`;
  if (p < 0.13) return `${word}:`;
  if (p < 0.14) return `${word}?`;
  return word;
}

function fontFile(file: string): string {
  const path = join(FONT_DIR, file);
  if (!existsSync(path)) throw new Error(`font file ${path} is missing: OCR test pages are set in DejaVu (Debian/Ubuntu: apt-get install fonts-dejavu-core fonts-dejavu-extra)`);
  return path;
}

/** A line's ink as a coverage mask (0 paper … 255 ink), cropped to the ink. */
interface Ink {
  width: number;
  height: number;
  coverage: Uint8Array;
}

async function renderInk(text: string, font: { font: string; file: string }, size: number): Promise<Ink> {
  // Pango sizes fonts in points; at dpi 6·size a 12 pt font (its default) is `size` pixels.
  const { data, info } = await sharp({ text: { text, font: `${font.font} 12`, fontfile: fontFile(font.file), dpi: 6 * size } })
    .extractChannel(0)
    .raw()
    .toBuffer({ resolveWithObject: true });
  let left = info.width, right = -1, top = info.height, bottom = -1;
  for (let y = 0; y < info.height; y++) {
    for (let x = 0; x < info.width; x++) {
      if (data[y * info.width + x] > 40) {
        if (x < left) left = x;
        if (x > right) right = x;
        if (y < top) top = y;
        if (y > bottom) bottom = y;
      }
    }
  }
  if (right < 0) throw new Error(`text ${JSON.stringify(text)} rendered no ink in ${font.font}`);
  const width = right - left + 1;
  const height = bottom - top + 1;
  const coverage = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) coverage.set(data.subarray((top + y) * info.width + left, (top + y) * info.width + left + width), y * width);
  return { width, height, coverage };
}

/** A line of words that fits `maxWidth` pixels in `font` at `size`, rendered. */
async function fittingLine(random: Random, font: { font: string; file: string }, size: number, maxWidth: number): Promise<{ text: string; ink: Ink }> {
  const words = Array.from({ length: integer(random, 2, 7) }, () => token(random));
  for (let n = words.length; n >= 1; n--) {
    const text = words.slice(0, n).join(' ');
    const ink = await renderInk(text, font, size);
    if (ink.width <= maxWidth) return { text, ink };
  }
  const text = words[0].slice(0, 4);
  return { text, ink: await renderInk(text, font, size) };
}

async function renderPage(random: Random, index: number, rotation: Rotation): Promise<OcrPage> {
  const width = pick(random, WIDTHS);
  const margin = integer(random, 24, 64);
  const lineCount = integer(random, 1, 6);
  const turned = new Set<number>();
  if (rotation === 'alternate') for (let i = 1; i < lineCount; i += 2) turned.add(i);
  if (rotation === 'one') turned.add(integer(random, 0, lineCount - 1));

  const placed: { line: OcrPageLine; ink: Ink; ink8: number }[] = [];
  let y = integer(random, 20, 60);
  for (let i = 0; i < lineCount; i++) {
    const font = pick(random, OCR_PAGE_FONTS);
    const size = integer(random, MIN_SIZE, MAX_SIZE);
    const indent = random() < 0.3 ? integer(random, 0, 120) : 0;
    const { text, ink } = await fittingLine(random, font, size, width - 2 * margin - indent);
    const x = margin + indent;
    const box: OcrPageLine['box'] = [[x, y], [x + ink.width, y], [x + ink.width, y + ink.height], [x, y + ink.height]];
    placed.push({ line: { text, box, rotated180: turned.has(i), font: font.font, size }, ink, ink8: integer(random, 0, 70) });
    // Gaps of 0.6–1.6 em: lines apart enough that a detector sees them as separate rows.
    y += ink.height + Math.round(size * (0.6 + random()));
  }
  const height = y + integer(random, 20, 60);

  const paper = [integer(random, 228, 255), integer(random, 228, 255), integer(random, 228, 255)];
  const pixels = Buffer.alloc(width * height * 3);
  for (let p = 0; p < width * height; p++) pixels.set(paper, p * 3);
  for (const { line, ink, ink8 } of placed) {
    const [x0, y0] = line.box[0];
    for (let row = 0; row < ink.height; row++) {
      for (let col = 0; col < ink.width; col++) {
        // A line turned 180° in place: its pixel (col, row) comes from the ink's opposite corner.
        const source = line.rotated180 ? (ink.height - 1 - row) * ink.width + (ink.width - 1 - col) : row * ink.width + col;
        const alpha = ink.coverage[source] / 255;
        if (alpha === 0) continue;
        const at = ((y0 + row) * width + x0 + col) * 3;
        for (let c = 0; c < 3; c++) pixels[at + c] = Math.round(paper[c] * (1 - alpha) + ink8 * alpha);
      }
    }
  }
  const png = await sharp(pixels, { raw: { width, height, channels: 3 } }).png().toBuffer();
  return { name: `page-${String(index).padStart(2, '0')}.png`, png, width, height, lines: placed.map((p) => p.line) };
}

const defaultRotation = (page: number): Rotation => (['none', 'alternate', 'none', 'one'] as const)[page % 4];

/** `count` pages from `seed`; the same pages for the same arguments. */
export async function renderOcrPages(options: OcrPageOptions = {}): Promise<OcrPage[]> {
  const { count = 16, seed = 11, rotation = defaultRotation } = options;
  if (!Number.isInteger(count) || count < 1 || count > MAX_PAGES) throw new RangeError(`count must be an integer in [1, ${MAX_PAGES}], got ${count}`);
  if (!Number.isInteger(seed)) throw new RangeError(`seed must be an integer, got ${seed}`);
  const random = generator(seed);
  const pages: OcrPage[] = [];
  for (let i = 0; i < count; i++) pages.push(await renderPage(random, i, rotation(i)));
  return pages;
}

/** Writes each page's PNG into `dir` and the truth of all as `truth.json`; returns the PNGs' paths. */
export async function writeOcrPages(dir: string, pages: readonly OcrPage[]): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const files = pages.map((page) => join(dir, page.name));
  await Promise.all(pages.map((page, i) => writeFile(files[i], page.png)));
  const truth = pages.map(({ name, width, height, lines }) => ({ name, width, height, lines }));
  await writeFile(join(dir, 'truth.json'), `${JSON.stringify(truth, null, 1)}\n`);
  return files;
}
