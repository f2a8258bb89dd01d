/**
 * DB post-processing on synthetic probability maps: the boxes PaddleOCR's DBPostProcess would
 * give (minimum-area rectangle, box_thresh on the mean inside, unclip by area · ratio /
 * perimeter, min_size), mapped back to the image as sent, sorted as sorted_boxes.
 */
import { describe, expect, it } from 'vitest';
import { dbBoxes, sortedBoxes, type ProbabilityMap } from './db.js';
import { dbSchema } from './schema.js';

const DEFAULTS = dbSchema.parse({});

function map(width: number, height: number): ProbabilityMap {
  return { data: new Float32Array(width * height), width, height };
}

/** Sets the pixels of [x0, x1] x [y0, y1] (inclusive) to `value`. */
function fill(m: ProbabilityMap, x0: number, y0: number, x1: number, y1: number, value = 0.9): ProbabilityMap {
  for (let y = y0; y <= y1; y++) for (let x = x0; x <= x1; x++) m.data[y * m.width + x] = value;
  return m;
}

/** A map whose frame is itself and whose image was sent at the map's size. */
function boxes(m: ProbabilityMap, options = DEFAULTS) {
  return dbBoxes(m, { height: m.height, width: m.width }, { height: m.height, width: m.width, sourceHeight: m.height, sourceWidth: m.width }, options);
}

const corners = (box: { x: number; y: number }[]) => box.map((p) => [p.x, p.y]);

describe('dbBoxes', () => {
  it('turns a rectangle into its box grown by area * 1.5 / perimeter on each side, clockwise from the top left', () => {
    // Pixel centres x 10..49, y 10..19: a 39 x 9 rectangle; d = 39 * 9 * 1.5 / 96 = 5.48.
    const found = boxes(fill(map(100, 40), 10, 10, 49, 19));
    expect(found.boxes.map(corners)).toEqual([[[5, 5], [54, 5], [54, 24], [5, 24]]]);
    expect(found.scores[0]).toBeCloseTo(0.9, 5);
  });

  it('finds a rotated rectangle at its angle', () => {
    const m = map(200, 200);
    // A 100 x 16 bar at 30 degrees around (100, 100).
    const angle = Math.PI / 6;
    for (let y = 0; y < 200; y++) {
      for (let x = 0; x < 200; x++) {
        const u = (x - 100) * Math.cos(angle) + (y - 100) * Math.sin(angle);
        const v = -(x - 100) * Math.sin(angle) + (y - 100) * Math.cos(angle);
        if (Math.abs(u) <= 50 && Math.abs(v) <= 8) m.data[y * 200 + x] = 0.8;
      }
    }
    const found = boxes(m);
    expect(found.boxes).toHaveLength(1);
    const [tl, tr, br, bl] = found.boxes[0];
    expect((Math.atan2(tr.y - tl.y, tr.x - tl.x) * 180) / Math.PI).toBeCloseTo(30, 0);
    const long = Math.hypot(tr.x - tl.x, tr.y - tl.y);
    const short = Math.hypot(bl.x - tl.x, bl.y - tl.y);
    // Grown by 100 * 16 * 1.5 / 232 = 10.3 on each side.
    expect(long).toBeGreaterThan(116);
    expect(long).toBeLessThan(124);
    expect(short).toBeGreaterThan(33);
    expect(short).toBeLessThan(40);
    expect((tl.x + br.x) / 2).toBeCloseTo(100, -0.5);
    expect((tl.y + br.y) / 2).toBeCloseTo(100, -0.5);
  });

  it('takes regions that touch at a corner as one (8-connected), and regions a pixel apart as two, left to right', () => {
    // One region's rectangle is half empty: its mean (0.45) passes only a lower box_thresh.
    const touching = fill(fill(map(100, 40), 10, 10, 29, 19), 30, 20, 49, 29);
    expect(boxes(touching, { ...DEFAULTS, box_thresh: 0.3 }).boxes).toHaveLength(1);
    const apart = fill(fill(map(100, 40), 10, 10, 29, 19), 31, 10, 49, 19);
    const found = boxes(apart);
    expect(found.boxes).toHaveLength(2);
    expect(found.boxes[0][0].x).toBeLessThan(found.boxes[1][0].x);
  });

  it('answers no boxes for an empty map', () => {
    expect(boxes(map(64, 32))).toEqual({ boxes: [], scores: [] });
  });

  it('drops a region whose mean probability is under box_thresh, though above thresh', () => {
    expect(boxes(fill(map(100, 40), 10, 10, 49, 19, 0.5)).boxes).toHaveLength(0);
    expect(boxes(fill(map(100, 40), 10, 10, 49, 19, 0.5), { ...DEFAULTS, box_thresh: 0.4 }).boxes).toHaveLength(1);
  });

  it('drops a region thinner than min_size', () => {
    // Pixel centres 2 rows apart: a rectangle 2 high, under min_size 3.
    expect(boxes(fill(map(100, 40), 10, 10, 49, 12)).boxes).toHaveLength(0);
    expect(boxes(fill(map(100, 40), 10, 10, 49, 13)).boxes).toHaveLength(1);
  });

  it('maps boxes to the image as sent and reads only the image\'s part of a padded map', () => {
    // The image is the top-left 50 x 20 of a 100 x 40 frame, sent at 500 x 200; text in the padding is not its own.
    const m = fill(fill(map(100, 40), 10, 5, 29, 14), 60, 25, 90, 35);
    const found = dbBoxes(m, { height: 40, width: 100 }, { height: 20, width: 50, sourceHeight: 200, sourceWidth: 500 }, DEFAULTS);
    // Pixel centres x 10..29, y 5..14: 19 x 9, d = 19 * 9 * 1.5 / 56 = 4.58; x 5.42..33.58, y 0.42..18.58; times 10, clipped to 499 x 199.
    expect(found.boxes.map(corners)).toEqual([[[54, 4], [336, 4], [336, 186], [54, 186]]]);
  });

  it('looks at max_candidates regions at most', () => {
    const m = map(200, 20);
    for (let i = 0; i < 5; i++) fill(m, 5 + i * 40, 5, 30 + i * 40, 14);
    expect(boxes(m).boxes).toHaveLength(5);
    expect(boxes(m, { ...DEFAULTS, max_candidates: 3 }).boxes).toHaveLength(3);
  });
});

describe('sortedBoxes', () => {
  const at = (x: number, y: number) => ({ box: [{ x, y }, { x: x + 10, y }, { x: x + 10, y: y + 5 }, { x, y: y + 5 }] });

  it('orders top to bottom, and left to right for boxes within 10 pixels of height', () => {
    const right = at(100, 50);
    const left = at(10, 55);
    const below = at(50, 80);
    expect(sortedBoxes([below, right, left])).toEqual([left, right, below]);
  });
});
