/** Generated OCR pages: reproducible from the seed, each true box on its ink, rotation as asked. */
import { describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { renderOcrPages } from './ocr-pages.js';

describe('renderOcrPages', () => {
  it('makes the same pages, byte for byte, from the same seed, and others from another', async () => {
    const [a, b, c] = await Promise.all([renderOcrPages({ count: 3, seed: 5 }), renderOcrPages({ count: 3, seed: 5 }), renderOcrPages({ count: 3, seed: 6 })]);
    expect(a.map((p) => p.png.equals(b[a.indexOf(p)].png))).toEqual([true, true, true]);
    expect(a.map((p) => p.lines)).toEqual(b.map((p) => p.lines));
    expect(a[0].png.equals(c[0].png)).toBe(false);
  });

  it('puts each line\'s ink inside its true box and leaves the rest of the page blank', async () => {
    for (const page of await renderOcrPages({ count: 4, seed: 7 })) {
      const { data, info } = await sharp(page.png).greyscale().raw().toBuffer({ resolveWithObject: true });
      expect([info.width, info.height]).toEqual([page.width, page.height]);
      const inBox = (x: number, y: number) => page.lines.some(({ box }) => x >= box[0][0] && x < box[2][0] && y >= box[0][1] && y < box[2][1]);
      let inkOutside = 0;
      for (let y = 0; y < info.height; y++) for (let x = 0; x < info.width; x++) if (data[y * info.width + x] < 200 && !inBox(x, y)) inkOutside++;
      expect(inkOutside).toBe(0);
      for (const { box } of page.lines) {
        // the box is tight: ink on its first and last row
        const rowHasInk = (y: number) => Array.from({ length: box[1][0] - box[0][0] }, (_, i) => data[y * info.width + box[0][0] + i]).some((v) => v < 200);
        expect([rowHasInk(box[0][1]), rowHasInk(box[2][1] - 1)]).toEqual([true, true]);
      }
    }
  });

  it('turns every second line, one line or none, as the rotation asks', async () => {
    const pages = await renderOcrPages({ count: 6, seed: 3, rotation: (i) => (['none', 'alternate', 'one'] as const)[i % 3] });
    for (const [i, page] of pages.entries()) {
      const turned = page.lines.map((l) => l.rotated180);
      if (i % 3 === 0) expect(turned.every((t) => !t)).toBe(true);
      if (i % 3 === 1) expect(turned).toEqual(page.lines.map((_, j) => j % 2 === 1));
      if (i % 3 === 2) expect(turned.filter(Boolean)).toHaveLength(1);
      expect(page.lines.length).toBeGreaterThanOrEqual(1);
      expect(page.lines.length).toBeLessThanOrEqual(6);
      for (const line of page.lines) expect(line.text).toMatch(/^[A-Za-z0-9 .,:?-]+$/);
    }
  });

  it('refuses a count out of bounds before rendering anything', async () => {
    await expect(renderOcrPages({ count: 0 })).rejects.toThrow(/count must be an integer in \[1, 1000\], got 0/);
    await expect(renderOcrPages({ count: 1e6 })).rejects.toThrow(/count must be/);
  });
});
