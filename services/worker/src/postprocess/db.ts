/**
 * PaddleOCR's DBPostProcess (box_type 'quad', score_mode 'fast') and the filtering and ordering
 * its text system applies after it (filter_tag_det_res, sorted_boxes): a DB detector's
 * probability map becomes text boxes in the pixels of the image as sent.
 *
 * 1. Pixels above `thresh` are text; each 8-connected region of them is a candidate (OpenCV's
 *    findContours gives PaddleOCR the same regions' outer borders; holes are not candidates
 *    here), at most `max_candidates` per image, in raster order.
 * 2. Its minimum-area rectangle (minAreaRect of the region's pixel centres) must have a shorter
 *    side of `min_size` or more, and the mean probability inside it must reach `box_thresh`.
 * 3. The rectangle is grown by area · unclip_ratio / perimeter on every side (pyclipper's round
 *    offset of a rectangle, whose minimum-area rectangle this is), and must then have a shorter
 *    side of `min_size + 2` or more.
 * 4. Corners are scaled from the resized image to the image as sent, rounded half to even, put
 *    clockwise from the top left, clipped to the image; boxes 3 pixels or less wide or high go.
 * 5. Boxes are sorted top to bottom, then left to right within 10 pixels of height (sorted_boxes).
 *
 * Only the image's own part of the map is read: the padding that batched it with larger
 * images is not part of it.
 */
import type { DbOptions } from './schema.js';
import { roundHalfEven, type ImageGeometry } from './geometry.js';
import { growRect, minAreaRect, type Point } from './min-area-rect.js';

/** One image's boxes: K boxes of 4 corners (x, y), clockwise from the top left, and their scores. */
export interface DetectedBoxes {
  boxes: Point[][];
  scores: number[];
}

/** A probability map of one image: `height` rows of `width` values. */
export interface ProbabilityMap {
  data: Float32Array;
  height: number;
  width: number;
}

type DbParameters = Omit<DbOptions, 'output'>;

/**
 * The boxes of one image. `frame` is the size of the tensor the image was run in (the map may
 * be a scaled version of it); `geometry` says where in it the image is and its size as sent.
 */
export function dbBoxes(map: ProbabilityMap, frame: { height: number; width: number }, geometry: ImageGeometry, options: DbParameters): DetectedBoxes {
  // The image's own part of the map.
  const height = Math.min(map.height, Math.max(1, Math.round((geometry.height * map.height) / frame.height)));
  const width = Math.min(map.width, Math.max(1, Math.round((geometry.width * map.width) / frame.width)));
  const regions = textRegions(map, height, width, options.thresh, options.max_candidates);
  const found: { box: Point[]; score: number }[] = [];
  for (const points of regions) {
    const rect = minAreaRect(points);
    if (Math.min(rect.width, rect.height) < options.min_size) continue;
    const score = meanInside(map, orderedBox(rect.corners), width, height);
    if (score < options.box_thresh) continue;
    const perimeter = 2 * (rect.width + rect.height);
    const grown = growRect(rect, (rect.width * rect.height * options.unclip_ratio) / perimeter);
    if (Math.min(grown.width, grown.height) < options.min_size + 2) continue;
    const scaled = orderedBox(grown.corners).map((p) => ({
      x: clip(roundHalfEven((p.x / width) * geometry.sourceWidth), 0, geometry.sourceWidth),
      y: clip(roundHalfEven((p.y / height) * geometry.sourceHeight), 0, geometry.sourceHeight),
    }));
    const box = clockwise(scaled).map((p) => ({ x: clip(p.x, 0, geometry.sourceWidth - 1), y: clip(p.y, 0, geometry.sourceHeight - 1) }));
    const boxWidth = Math.trunc(Math.hypot(box[0].x - box[1].x, box[0].y - box[1].y));
    const boxHeight = Math.trunc(Math.hypot(box[0].x - box[3].x, box[0].y - box[3].y));
    if (boxWidth <= 3 || boxHeight <= 3) continue;
    found.push({ box, score });
  }
  const sorted = sortedBoxes(found);
  return { boxes: sorted.map((f) => f.box), scores: sorted.map((f) => f.score) };
}

/**
 * The 8-connected regions of pixels above `thresh` in the top-left `height` x `width` of the
 * map, each as the centres of its leftmost and rightmost pixel in every row it spans (all the
 * convex hull needs), at most `most` regions, in raster order of their first pixel.
 */
export function textRegions(map: ProbabilityMap, height: number, width: number, thresh: number, most: number): Point[][] {
  const { data, width: stride } = map;
  const seen = new Uint8Array(height * width);
  const stack = new Int32Array(height * width);
  const rowMin = new Int32Array(height);
  const rowMax = new Int32Array(height);
  const regions: Point[][] = [];
  for (let y0 = 0; y0 < height && regions.length < most; y0++) {
    for (let x0 = 0; x0 < width && regions.length < most; x0++) {
      const start = y0 * width + x0;
      if (seen[start] || !(data[y0 * stride + x0] > thresh)) continue;
      seen[start] = 1;
      let top = 0;
      stack[top++] = start;
      let firstRow = y0;
      let lastRow = y0;
      rowMin[y0] = x0;
      rowMax[y0] = x0;
      while (top > 0) {
        const at = stack[--top];
        const y = (at / width) | 0;
        const x = at - y * width;
        for (let dy = -1; dy <= 1; dy++) {
          const ny = y + dy;
          if (ny < 0 || ny >= height) continue;
          for (let dx = -1; dx <= 1; dx++) {
            const nx = x + dx;
            if (nx < 0 || nx >= width) continue;
            const next = ny * width + nx;
            if (seen[next] || !(data[ny * stride + nx] > thresh)) continue;
            seen[next] = 1;
            stack[top++] = next;
            if (ny > lastRow) {
              // Rows are reached top down from y0, never above it; a new row starts its extremes.
              for (let r = lastRow + 1; r <= ny; r++) { rowMin[r] = width; rowMax[r] = -1; }
              lastRow = ny;
            } else if (ny < firstRow) {
              for (let r = ny; r < firstRow; r++) { rowMin[r] = width; rowMax[r] = -1; }
              firstRow = ny;
            }
            if (nx < rowMin[ny]) rowMin[ny] = nx;
            if (nx > rowMax[ny]) rowMax[ny] = nx;
          }
        }
      }
      const points: Point[] = [];
      for (let r = firstRow; r <= lastRow; r++) {
        if (rowMax[r] < 0) continue;
        points.push({ x: rowMin[r], y: r });
        if (rowMax[r] !== rowMin[r]) points.push({ x: rowMax[r], y: r });
      }
      regions.push(points);
    }
  }
  return regions;
}

/** PaddleOCR's get_mini_boxes order: by x, then the left pair and the right pair each by y: top left, top right, bottom right, bottom left. */
export function orderedBox(corners: readonly Point[]): Point[] {
  const p = [...corners].sort((a, b) => a.x - b.x);
  const [i1, i4] = p[1].y > p[0].y ? [0, 1] : [1, 0];
  const [i2, i3] = p[3].y > p[2].y ? [2, 3] : [3, 2];
  return [p[i1], p[i2], p[i3], p[i4]];
}

/** PaddleOCR's order_points_clockwise: top left has the least x + y, bottom right the most; of the others, top right has the least y - x. */
export function clockwise(box: readonly Point[]): Point[] {
  const sums = box.map((p) => p.x + p.y);
  const first = sums.indexOf(Math.min(...sums));
  let last = sums.lastIndexOf(Math.max(...sums));
  if (last === first) last = (first + 2) % 4;
  const rest = box.filter((_, i) => i !== first && i !== last);
  const [tr, bl] = rest[0].y - rest[0].x <= rest[1].y - rest[1].x ? [rest[0], rest[1]] : [rest[1], rest[0]];
  return [box[first], tr, box[last], bl];
}

/**
 * PaddleOCR's box_score_fast: the mean of the map over the pixels the box covers (its corners
 * truncated to whole pixels, edges included, as cv2.fillPoly draws it), within the image.
 */
export function meanInside(map: ProbabilityMap, box: readonly Point[], width: number, height: number): number {
  const xs = box.map((p) => p.x);
  const ys = box.map((p) => p.y);
  const xmin = clip(Math.floor(Math.min(...xs)), 0, width - 1);
  const xmax = clip(Math.ceil(Math.max(...xs)), 0, width - 1);
  const ymin = clip(Math.floor(Math.min(...ys)), 0, height - 1);
  const ymax = clip(Math.ceil(Math.max(...ys)), 0, height - 1);
  const corners = box.map((p) => ({ x: Math.trunc(p.x), y: Math.trunc(p.y) }));
  let sum = 0;
  let count = 0;
  for (let y = ymin; y <= ymax; y++) {
    for (let x = xmin; x <= xmax; x++) {
      if (!insideConvex(corners, x, y)) continue;
      sum += map.data[y * map.width + x];
      count++;
    }
  }
  return count === 0 ? 0 : sum / count;
}

/** Inside or on the edge of a convex polygon, either orientation. */
function insideConvex(polygon: readonly Point[], x: number, y: number): boolean {
  let positive = false;
  let negative = false;
  for (let i = 0; i < polygon.length; i++) {
    const a = polygon[i];
    const b = polygon[(i + 1) % polygon.length];
    const cross = (b.x - a.x) * (y - a.y) - (b.y - a.y) * (x - a.x);
    if (cross > 1e-9) positive = true;
    else if (cross < -1e-9) negative = true;
    if (positive && negative) return false;
  }
  return true;
}

/** PaddleOCR's sorted_boxes: by the top-left corner's y then x; a box within 10 pixels of height of the one before it and left of it goes first. */
export function sortedBoxes<T extends { box: Point[] }>(items: readonly T[]): T[] {
  const sorted = [...items].sort((a, b) => a.box[0].y - b.box[0].y || a.box[0].x - b.box[0].x);
  for (let i = 0; i < sorted.length - 1; i++) {
    for (let j = i; j >= 0; j--) {
      if (Math.abs(sorted[j + 1].box[0].y - sorted[j].box[0].y) < 10 && sorted[j + 1].box[0].x < sorted[j].box[0].x) {
        [sorted[j], sorted[j + 1]] = [sorted[j + 1], sorted[j]];
      } else {
        break;
      }
    }
  }
  return sorted;
}

function clip(value: number, low: number, high: number): number {
  return value < low ? low : value > high ? high : value;
}
