/**
 * Renders text-line images with a built-in bitmap font, so test images for the text-direction
 * classifier need no font files (CI machines and containers often have none) and are identical
 * on every machine.
 */
import sharp from 'sharp';

/**
 * 5-wide glyphs on a 9-row cell: rows 0–6 hold capitals, digits and ascenders, the baseline sits
 * under row 6, rows 7–8 hold descenders. Lowercase letters with ascenders and descenders matter:
 * the orientation classifier reads upside-down text largely from where they stick out.
 */
const GLYPHS: Record<string, readonly string[]> = {
  A: ['.###.', '#...#', '#...#', '#####', '#...#', '#...#', '#...#'],
  B: ['####.', '#...#', '#...#', '####.', '#...#', '#...#', '####.'],
  C: ['.###.', '#...#', '#....', '#....', '#....', '#...#', '.###.'],
  D: ['####.', '#...#', '#...#', '#...#', '#...#', '#...#', '####.'],
  E: ['#####', '#....', '#....', '####.', '#....', '#....', '#####'],
  F: ['#####', '#....', '#....', '####.', '#....', '#....', '#....'],
  G: ['.###.', '#...#', '#....', '#.###', '#...#', '#...#', '.####'],
  H: ['#...#', '#...#', '#...#', '#####', '#...#', '#...#', '#...#'],
  I: ['.###.', '..#..', '..#..', '..#..', '..#..', '..#..', '.###.'],
  J: ['..###', '...#.', '...#.', '...#.', '...#.', '#..#.', '.##..'],
  K: ['#...#', '#..#.', '#.#..', '##...', '#.#..', '#..#.', '#...#'],
  L: ['#....', '#....', '#....', '#....', '#....', '#....', '#####'],
  M: ['#...#', '##.##', '#.#.#', '#.#.#', '#...#', '#...#', '#...#'],
  N: ['#...#', '#...#', '##..#', '#.#.#', '#..##', '#...#', '#...#'],
  O: ['.###.', '#...#', '#...#', '#...#', '#...#', '#...#', '.###.'],
  P: ['####.', '#...#', '#...#', '####.', '#....', '#....', '#....'],
  Q: ['.###.', '#...#', '#...#', '#...#', '#.#.#', '#..#.', '.##.#'],
  R: ['####.', '#...#', '#...#', '####.', '#.#..', '#..#.', '#...#'],
  S: ['.####', '#....', '#....', '.###.', '....#', '....#', '####.'],
  T: ['#####', '..#..', '..#..', '..#..', '..#..', '..#..', '..#..'],
  U: ['#...#', '#...#', '#...#', '#...#', '#...#', '#...#', '.###.'],
  V: ['#...#', '#...#', '#...#', '#...#', '#...#', '.#.#.', '..#..'],
  W: ['#...#', '#...#', '#...#', '#.#.#', '#.#.#', '#.#.#', '.#.#.'],
  X: ['#...#', '#...#', '.#.#.', '..#..', '.#.#.', '#...#', '#...#'],
  Y: ['#...#', '#...#', '.#.#.', '..#..', '..#..', '..#..', '..#..'],
  Z: ['#####', '....#', '...#.', '..#..', '.#...', '#....', '#####'],

  a: ['.....', '.....', '.###.', '....#', '.####', '#...#', '.####'],
  b: ['#....', '#....', '#.##.', '##..#', '#...#', '#...#', '####.'],
  c: ['.....', '.....', '.###.', '#....', '#....', '#...#', '.###.'],
  d: ['....#', '....#', '.##.#', '#..##', '#...#', '#...#', '.####'],
  e: ['.....', '.....', '.###.', '#...#', '#####', '#....', '.###.'],
  f: ['..##.', '.#..#', '.#...', '###..', '.#...', '.#...', '.#...'],
  g: ['.....', '.....', '.####', '#...#', '#...#', '#...#', '.####', '....#', '.###.'],
  h: ['#....', '#....', '#.##.', '##..#', '#...#', '#...#', '#...#'],
  i: ['..#..', '.....', '.##..', '..#..', '..#..', '..#..', '.###.'],
  j: ['...#.', '.....', '..##.', '...#.', '...#.', '...#.', '...#.', '#..#.', '.##..'],
  k: ['#....', '#....', '#..#.', '#.#..', '##...', '#.#..', '#..#.'],
  l: ['.##..', '..#..', '..#..', '..#..', '..#..', '..#..', '.###.'],
  m: ['.....', '.....', '##.#.', '#.#.#', '#.#.#', '#...#', '#...#'],
  n: ['.....', '.....', '#.##.', '##..#', '#...#', '#...#', '#...#'],
  o: ['.....', '.....', '.###.', '#...#', '#...#', '#...#', '.###.'],
  p: ['.....', '.....', '####.', '#...#', '#...#', '#...#', '####.', '#....', '#....'],
  q: ['.....', '.....', '.####', '#...#', '#...#', '#...#', '.####', '....#', '....#'],
  r: ['.....', '.....', '#.##.', '##..#', '#....', '#....', '#....'],
  s: ['.....', '.....', '.####', '#....', '.###.', '....#', '####.'],
  t: ['.#...', '.#...', '###..', '.#...', '.#...', '.#..#', '..##.'],
  u: ['.....', '.....', '#...#', '#...#', '#...#', '#..##', '.##.#'],
  v: ['.....', '.....', '#...#', '#...#', '#...#', '.#.#.', '..#..'],
  w: ['.....', '.....', '#...#', '#...#', '#.#.#', '#.#.#', '.#.#.'],
  x: ['.....', '.....', '#...#', '.#.#.', '..#..', '.#.#.', '#...#'],
  y: ['.....', '.....', '#...#', '#...#', '#...#', '#...#', '.####', '....#', '.###.'],
  z: ['.....', '.....', '#####', '...#.', '..#..', '.#...', '#####'],

  0: ['.###.', '#...#', '#..##', '#.#.#', '##..#', '#...#', '.###.'],
  1: ['..#..', '.##..', '..#..', '..#..', '..#..', '..#..', '.###.'],
  2: ['.###.', '#...#', '....#', '...#.', '..#..', '.#...', '#####'],
  3: ['#####', '...#.', '..#..', '...#.', '....#', '#...#', '.###.'],
  4: ['...#.', '..##.', '.#.#.', '#..#.', '#####', '...#.', '...#.'],
  5: ['#####', '#....', '####.', '....#', '....#', '#...#', '.###.'],
  6: ['..##.', '.#...', '#....', '####.', '#...#', '#...#', '.###.'],
  7: ['#####', '....#', '...#.', '..#..', '.#...', '.#...', '.#...'],
  8: ['.###.', '#...#', '#...#', '.###.', '#...#', '#...#', '.###.'],
  9: ['.###.', '#...#', '#...#', '.####', '....#', '...#.', '.##..'],

  ' ': ['.....'],
  '.': ['.....', '.....', '.....', '.....', '.....', '.##..', '.##..'],
  ',': ['.....', '.....', '.....', '.....', '.....', '.##..', '.##..', '..#..', '.#...'],
  '!': ['..#..', '..#..', '..#..', '..#..', '..#..', '.....', '..#..'],
  '?': ['.###.', '#...#', '....#', '...#.', '..#..', '.....', '..#..'],
  '-': ['.....', '.....', '.....', '#####', '.....', '.....', '.....'],
  ':': ['.....', '.##..', '.##..', '.....', '.##..', '.##..', '.....'],
  "'": ['..#..', '..#..', '.#...', '.....', '.....', '.....', '.....'],
};

const GLYPH_WIDTH = 5;
const CELL_ROWS = 9;

/** Characters the built-in font can draw. */
export const SUPPORTED_CHARACTERS: ReadonlySet<string> = new Set(Object.keys(GLYPHS));

export interface TextImageOptions {
  /** Rotate the finished image by 180° (an upside-down text line). */
  rotate180?: boolean;
  /** Image pixels per font pixel. Default 5: a 65-pixel-high line, a little above the classifier's 48. */
  scale?: number;
  /** Blank border around the text, in font pixels. Default 2. */
  margin?: number;
  /** Blank columns between glyphs, in font pixels. Default 2. */
  tracking?: number;
  /** Extra stroke thickness in image pixels, grown to the right and down. Default 0.4 × scale. */
  bold?: number;
  /** Gaussian blur sigma in image pixels, 0 for none. Default 0.3 × scale. */
  blur?: number;
}

const INK = 25;
const PAPER = 240;

/** Renders `text` as dark glyphs on a light background and encodes it as an RGB PNG. */
export async function renderTextImage(text: string, options: TextImageOptions = {}): Promise<Buffer> {
  // Defaults were tuned against the PaddleOCR orientation classifier (see text-direction.test.ts):
  // hard-edged, tightly packed pixel glyphs read as ambiguous, while heavier strokes, wider letter
  // spacing and a slight blur (the anti-aliasing of real printed or photographed text) make
  // upright and upside-down lines classify with high confidence.
  const { rotate180 = false, scale = 5, margin = 2, tracking = 2 } = options;
  const bold = options.bold ?? Math.round(0.4 * scale);
  const blur = options.blur ?? 0.3 * scale;
  if (!Number.isInteger(scale) || scale < 1) throw new RangeError(`scale must be a positive integer, got ${scale}`);
  if (!Number.isInteger(margin) || margin < 0) throw new RangeError(`margin must be a non-negative integer, got ${margin}`);
  if (!(blur === 0 || (blur >= 0.3 && blur <= 1000))) throw new RangeError(`blur must be 0 or a sigma in [0.3, 1000], got ${blur}`);
  if (!Number.isInteger(tracking) || tracking < 0) throw new RangeError(`tracking must be a non-negative integer, got ${tracking}`);
  if (!Number.isInteger(bold) || bold < 0 || bold >= scale) throw new RangeError(`bold must be an integer in [0, scale), got ${bold}`);
  const chars = [...text];
  if (chars.length === 0) throw new RangeError('text is empty');
  const unsupported = chars.filter((c) => !SUPPORTED_CHARACTERS.has(c));
  if (unsupported.length > 0) throw new RangeError(`no glyph for ${[...new Set(unsupported)].map((c) => JSON.stringify(c)).join(', ')}`);

  const columns = chars.length * (GLYPH_WIDTH + tracking) - tracking + 2 * margin;
  const rows = CELL_ROWS + 2 * margin;
  const width = columns * scale;
  const height = rows * scale;
  const raw = Buffer.alloc(width * height * 3, PAPER);

  const ink = (x0: number, y0: number): void => {
    // Each font pixel becomes a (scale + bold)² block, so strokes are heavier than the grid
    // spacing and look like printed text rather than a dot matrix.
    for (let y = y0; y < Math.min(height, y0 + scale + bold); y++) {
      raw.fill(INK, (y * width + x0) * 3, (y * width + Math.min(width, x0 + scale + bold)) * 3);
    }
  };

  chars.forEach((char, index) => {
    const glyph = GLYPHS[char];
    const left = margin + index * (GLYPH_WIDTH + tracking);
    glyph.forEach((line, row) => {
      for (let col = 0; col < GLYPH_WIDTH; col++) {
        if (line[col] === '#') ink((left + col) * scale, (margin + row) * scale);
      }
    });
  });

  let image = sharp(raw, { raw: { width, height, channels: 3 } });
  if (blur > 0) image = image.blur(blur);
  if (rotate180) image = image.rotate(180);
  return image.png().toBuffer();
}
