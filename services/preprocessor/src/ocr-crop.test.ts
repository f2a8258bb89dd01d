/**
 * OcrCrop: a rendered page and boxes at known places → each line rectified at the size
 * PaddleOCR's get_rotate_crop_image gives it, as the text-direction frame and the recognition
 * tensor; tall boxes turned, tilted boxes straightened; bad input refused before decoding.
 */
import { describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { TensorError } from '@infermesh/tensor';
import type { OcrCropRequest__Output } from '@infermesh/contracts';
import { DIRECTION_WIDTH, LINE_HEIGHT, MAX_BOXES_PER_PAGE, PAD_PIXEL, lineSize, ocrCrop, recognitionWidth } from './ocr-crop.js';

const WIDTH = 400;
const HEIGHT = 300;

/** A white page with black rectangles [x, y, w, h] drawn on it, as PNG. */
async function page(rects: [number, number, number, number][], rotate?: { angle: number; cx: number; cy: number }): Promise<Buffer> {
  const shapes = rects.map(([x, y, w, h]) => `<rect x="${x}" y="${y}" width="${w}" height="${h}" fill="black"${rotate ? ` transform="rotate(${rotate.angle} ${rotate.cx} ${rotate.cy})"` : ''}/>`).join('');
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}"><rect width="100%" height="100%" fill="white"/>${shapes}</svg>`;
  return sharp(Buffer.from(svg)).png().toBuffer();
}

/** Box corners clockwise from top-left of an axis-aligned rectangle. */
const box = (x: number, y: number, w: number, h: number) => [x, y, x + w, y, x + w, y + h, x, y + h];

function request(image: Buffer, boxes: number[], extra: Partial<OcrCropRequest__Output> = {}): OcrCropRequest__Output {
  return { image, boxes, traceparent: '', maxRecognitionWidth: 0, ...extra };
}

/** Mean of the pixels of columns [from, to) of a tensor [48, width, 3]. */
function meanOfColumns(tensor: Uint8Array, width: number, from: number, to: number): number {
  let sum = 0;
  for (let y = 0; y < LINE_HEIGHT; y++) for (let x = from; x < to; x++) for (let c = 0; c < 3; c++) sum += tensor[(y * width + x) * 3 + c];
  return sum / (LINE_HEIGHT * (to - from) * 3);
}

describe('OcrCrop', () => {
  it('crops a line to height 48 at its aspect ratio: direction frame padded right, recognition tensor at its own width', async () => {
    // A 200 x 40 box: the left half of it black, the right half white.
    const image = await page([[50, 60, 100, 40]]);
    const answer = await ocrCrop(request(image, box(50, 60, 200, 40)));
    expect(answer.width).toBe(WIDTH);
    expect(answer.height).toBe(HEIGHT);
    expect(answer.recognitionWidths).toEqual([240]); // ceil(48 * 200 / 40)
    const recognition = answer.recognition as Buffer;
    expect(recognition.length).toBe(LINE_HEIGHT * 240 * 3);
    expect(meanOfColumns(recognition, 240, 0, 110)).toBeLessThan(10);
    expect(meanOfColumns(recognition, 240, 130, 240)).toBeGreaterThan(245);
    // 240 is wider than the frame: the direction tensor is the line squeezed to 192, no padding.
    const direction = answer.direction as Buffer;
    expect(direction.length).toBe(LINE_HEIGHT * DIRECTION_WIDTH * 3);
    expect(meanOfColumns(direction, DIRECTION_WIDTH, 0, 90)).toBeLessThan(10);
    expect(meanOfColumns(direction, DIRECTION_WIDTH, 100, 192)).toBeGreaterThan(245);
  });

  it('pads a short line\'s direction frame on the right with pixel 128', async () => {
    const image = await page([[50, 60, 60, 40]]);
    const answer = await ocrCrop(request(image, box(50, 60, 60, 40)));
    expect(answer.recognitionWidths).toEqual([72]);
    const direction = answer.direction as Buffer;
    expect(meanOfColumns(direction, DIRECTION_WIDTH, 0, 72)).toBeLessThan(10);
    expect(meanOfColumns(direction, DIRECTION_WIDTH, 72, 192)).toBe(PAD_PIXEL);
  });

  it('turns a box 1.5 times taller than wide 90° counter-clockwise (its top becomes the left)', async () => {
    // A 30 x 120 box whose top half is black.
    const image = await page([[300, 100, 30, 60]]);
    const answer = await ocrCrop(request(image, box(300, 100, 30, 120)));
    expect(answer.recognitionWidths).toEqual([192]); // turned to 120 x 30: ceil(48 * 120 / 30)
    const recognition = answer.recognition as Buffer;
    expect(meanOfColumns(recognition, 192, 0, 90)).toBeLessThan(10);
    expect(meanOfColumns(recognition, 192, 102, 192)).toBeGreaterThan(245);
  });

  it('straightens a tilted box: the left half black, the right half white, as on the rotated page', async () => {
    const angle = 30;
    const [x, y, w, h] = [120, 100, 160, 80];
    // The left half of the rectangle black, the whole rotated 30° about (200, 140).
    const image = await page([[x, y, w / 2, h]], { angle, cx: 200, cy: 140 });
    const t = (angle * Math.PI) / 180;
    const turn = (px: number, py: number) => [200 + (px - 200) * Math.cos(t) - (py - 140) * Math.sin(t), 140 + (px - 200) * Math.sin(t) + (py - 140) * Math.cos(t)];
    // The rotated rectangle's corners, shrunk by 2 px so that no edge outside it is sampled.
    const corners = [turn(x + 2, y + 2), turn(x + w - 2, y + 2), turn(x + w - 2, y + h - 2), turn(x + 2, y + h - 2)].flat();
    const answer = await ocrCrop(request(image, corners));
    expect(lineSize([[corners[0], corners[1]], [corners[2], corners[3]], [corners[4], corners[5]], [corners[6], corners[7]]])).toEqual({ width: 156, height: 76, turned: false });
    const width = answer.recognitionWidths![0];
    expect(width).toBe(recognitionWidth({ width: 156, height: 76 }, 10_000));
    const recognition = answer.recognition as Buffer;
    expect(meanOfColumns(recognition, width, 0, Math.floor(width * 0.45))).toBeLessThan(12);
    expect(meanOfColumns(recognition, width, Math.ceil(width * 0.55), width)).toBeGreaterThan(243);
  });

  it('answers no lines for no boxes', async () => {
    const answer = await ocrCrop(request(await page([]), []));
    expect(answer.recognitionWidths ?? []).toEqual([]);
    expect((answer.direction as Buffer).length).toBe(0);
  });

  it('caps the recognition width', async () => {
    const answer = await ocrCrop(request(await page([]), box(0, 0, 400, 10), { maxRecognitionWidth: 500 }));
    expect(answer.recognitionWidths).toEqual([500]);
  });

  it('refuses a box list that is not whole boxes, too many boxes, or corners off any page, before decoding', async () => {
    const notAnImage = Buffer.from('not an image');
    await expect(ocrCrop(request(notAnImage, [1, 2, 3]))).rejects.toThrow(/boxes: 3 numbers is not a whole number of boxes/);
    await expect(ocrCrop(request(notAnImage, new Array((MAX_BOXES_PER_PAGE + 1) * 8).fill(1)))).rejects.toThrow(/over the limit of 1000/);
    await expect(ocrCrop(request(notAnImage, [0, 0, 1, 0, 1, 1, 0, Number.NaN]))).rejects.toThrow(/box 0 has a corner outside any page/);
  });

  it('refuses a page that is not an image as INVALID_ARGUMENT naming the input', async () => {
    const error = await ocrCrop(request(Buffer.from('not an image'), box(0, 0, 10, 10))).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TensorError);
    expect((error as Error).message).toMatch(/^input 'image': element 0 is not a known image format/);
  });

  it('refuses an answer over the message limit as RESOURCE_EXHAUSTED', async () => {
    await expect(ocrCrop(request(await page([]), box(0, 0, 200, 40)), 1000)).rejects.toMatchObject({ code: 8 });
  });
});
