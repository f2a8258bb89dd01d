/**
 * The smallest rotated rectangle around a set of points (OpenCV's minAreaRect), by rotating
 * calipers over the convex hull: the best rectangle has a side along one of the hull's edges.
 */

export interface Point {
  x: number;
  y: number;
}

export interface RotatedRect {
  /** The four corners, in order around the rectangle. */
  corners: [Point, Point, Point, Point];
  /** Side lengths (along the first edge, and across it). */
  width: number;
  height: number;
}

/** Andrew's monotone chain; collinear points are dropped. Returns the hull counter-clockwise in y-up terms. */
export function convexHull(points: readonly Point[]): Point[] {
  const sorted = [...points].sort((a, b) => a.x - b.x || a.y - b.y);
  if (sorted.length < 3) return sorted;
  const cross = (o: Point, a: Point, b: Point) => (a.x - o.x) * (b.y - o.y) - (a.y - o.y) * (b.x - o.x);
  const lower: Point[] = [];
  for (const p of sorted) {
    while (lower.length >= 2 && cross(lower[lower.length - 2], lower[lower.length - 1], p) <= 0) lower.pop();
    lower.push(p);
  }
  const upper: Point[] = [];
  for (let i = sorted.length - 1; i >= 0; i--) {
    const p = sorted[i];
    while (upper.length >= 2 && cross(upper[upper.length - 2], upper[upper.length - 1], p) <= 0) upper.pop();
    upper.push(p);
  }
  lower.pop();
  upper.pop();
  return [...lower, ...upper];
}

/** The minimum-area rectangle around `points`; width or height 0 when they are collinear or one point. */
export function minAreaRect(points: readonly Point[]): RotatedRect {
  const hull = convexHull(points);
  if (hull.length === 0) throw new RangeError('minAreaRect of no points');
  if (hull.length < 3) {
    const [a, b = a] = hull;
    const length = Math.hypot(b.x - a.x, b.y - a.y);
    return { corners: [a, b, b, a], width: length, height: 0 };
  }
  let best: RotatedRect | undefined;
  let bestArea = Infinity;
  for (let i = 0; i < hull.length; i++) {
    const p = hull[i];
    const q = hull[(i + 1) % hull.length];
    const length = Math.hypot(q.x - p.x, q.y - p.y);
    if (length === 0) continue;
    const ux = (q.x - p.x) / length;
    const uy = (q.y - p.y) / length;
    let minU = Infinity, maxU = -Infinity, minV = Infinity, maxV = -Infinity;
    for (const h of hull) {
      const u = h.x * ux + h.y * uy;
      const v = -h.x * uy + h.y * ux;
      if (u < minU) minU = u;
      if (u > maxU) maxU = u;
      if (v < minV) minV = v;
      if (v > maxV) maxV = v;
    }
    const area = (maxU - minU) * (maxV - minV);
    if (area < bestArea) {
      bestArea = area;
      const at = (u: number, v: number): Point => ({ x: u * ux - v * uy, y: u * uy + v * ux });
      best = { corners: [at(minU, minV), at(maxU, minV), at(maxU, maxV), at(minU, maxV)], width: maxU - minU, height: maxV - minV };
    }
  }
  return best!;
}

/** The rectangle grown by `distance` on every side (same centre and angle). */
export function growRect(rect: RotatedRect, distance: number): RotatedRect {
  const [a, b, , d] = rect.corners;
  const lengthU = Math.hypot(b.x - a.x, b.y - a.y);
  const lengthV = Math.hypot(d.x - a.x, d.y - a.y);
  // Unit vectors along both sides; a degenerate side has no direction of its own, so it takes the other's normal.
  let ux = lengthU > 0 ? (b.x - a.x) / lengthU : 1;
  let uy = lengthU > 0 ? (b.y - a.y) / lengthU : 0;
  let vx = lengthV > 0 ? (d.x - a.x) / lengthV : -uy;
  let vy = lengthV > 0 ? (d.y - a.y) / lengthV : ux;
  if (lengthU === 0 && lengthV > 0) {
    ux = vy;
    uy = -vx;
  }
  const cx = (rect.corners[0].x + rect.corners[2].x) / 2;
  const cy = (rect.corners[0].y + rect.corners[2].y) / 2;
  const hu = lengthU / 2 + distance;
  const hv = lengthV / 2 + distance;
  const at = (su: number, sv: number): Point => ({ x: cx + su * hu * ux + sv * hv * vx, y: cy + su * hu * uy + sv * hv * vy });
  return { corners: [at(-1, -1), at(1, -1), at(1, 1), at(-1, 1)], width: 2 * hu, height: 2 * hv };
}
