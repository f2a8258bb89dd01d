/**
 * What the preprocessor refuses before it decodes anything: formats it was not configured
 * for, too many images, and pixels declared in headers beyond its limits. Each case would
 * otherwise reach sharp's decoder (or fail there with a different message).
 */
import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { encodeBytesElements } from '@infermesh/tensor';
import type { ImagePipeline__Output, PreprocessRequest__Output } from '@infermesh/contracts';
import { DEFAULT_PREPROCESS_LIMITS, declaredSize, sniffFormat, type PreprocessLimits } from './image-limits.js';
import { preprocess } from './preprocessor-service.js';
import { preprocessLimitsOf, preprocessorConfig } from './config.js';

const pipeline: ImagePipeline__Output = {
  input: 'image', output: 'x', width: 4, height: 2, resize: 'stretch', mean: [0, 0, 0], std: [1, 1, 1],
  layout: 'NCHW', datatype: 'FP32', channelOrder: 'RGB', scale: 1 / 255, padValue: 0,
};

const solid = (format: 'png' | 'jpeg' | 'webp' | 'gif' | 'tiff', width = 3, height = 3) =>
  sharp({ create: { width, height, channels: 3, background: { r: 9, g: 8, b: 7 } } }).toFormat(format).toBuffer();

function chunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

/** A PNG of a few dozen bytes whose header declares `width` x `height` RGB pixels (a decompression bomb's header). */
function pngDeclaring(width: number, height: number): Buffer {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // RGB
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', header), chunk('IDAT', Buffer.from([0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01])), chunk('IEND', Buffer.alloc(0))]);
}

async function errorOf(images: Buffer[], limits: Partial<PreprocessLimits> = {}, spec = pipeline): Promise<string> {
  const request: PreprocessRequest__Output = { modelName: 'm', pipeline: spec, items: [{ images: encodeBytesElements(images), traceparent: '' }] };
  const response = await preprocess(request, undefined, undefined, { ...DEFAULT_PREPROCESS_LIMITS, ...limits });
  return response.results![0].error ?? '';
}

describe('image formats', () => {
  it('tells formats by their magic bytes', async () => {
    for (const format of ['png', 'jpeg', 'webp', 'gif', 'tiff'] as const) expect(sniffFormat(await solid(format))).toBe(format);
    expect(sniffFormat(Buffer.from('<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>'))).toBe('svg');
    expect(sniffFormat(Buffer.from('plain text'))).toBeUndefined();
  });

  it('decodes PNG and JPEG by default', async () => {
    expect(await errorOf([await solid('png'), await solid('jpeg')])).toBe('');
  });

  it.each(['webp', 'gif', 'tiff'] as const)('refuses %s unless configured, naming the format found', async (format) => {
    expect(await errorOf([await solid('png'), await solid(format)])).toBe(`input 'image': element 1 is ${format.toUpperCase()}; this preprocessor decodes PNG, JPEG (PREPROCESSOR_IMAGE_FORMATS)`);
  });

  it('refuses SVG, which sharp would otherwise render with librsvg', async () => {
    const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"><rect width="4" height="4"/></svg>');
    expect(await errorOf([svg])).toMatch(/element 0 is SVG; this preprocessor decodes PNG, JPEG/);
  });

  it('refuses bytes that announce no format', async () => {
    expect(await errorOf([Buffer.from('GIF88a not quite')])).toMatch(/element 0 is not a known image format; this preprocessor decodes PNG, JPEG/);
  });

  it('decodes a format once it is configured', async () => {
    expect(await errorOf([await solid('webp')], { formats: ['png', 'jpeg', 'webp'] })).toBe('');
  });

  it('reads PREPROCESSOR_IMAGE_FORMATS, and refuses a format it does not know', () => {
    expect(preprocessLimitsOf(preprocessorConfig({})).formats).toEqual(['png', 'jpeg']);
    expect(preprocessLimitsOf(preprocessorConfig({ PREPROCESSOR_IMAGE_FORMATS: 'png, JPEG ,webp' })).formats).toEqual(['png', 'jpeg', 'webp']);
    expect(() => preprocessorConfig({ PREPROCESSOR_IMAGE_FORMATS: 'png,bmp' })).toThrow(/PREPROCESSOR_IMAGE_FORMATS/);
  });
});

describe('images and pixels per request', () => {
  it('refuses 10,000 images in one request by their count, before reading any of them', async () => {
    // Not images at all: were any decoded (or its header read), the error would say so instead.
    const images = Array.from({ length: 10_000 }, () => Buffer.from('x'));
    expect(await errorOf(images)).toBe("input 'image': 10000 images in one request, over the preprocessor's limit of 1024 (PREPROCESSOR_MAX_IMAGES)");
  });

  it('refuses a small PNG whose header declares a huge image, from the header', async () => {
    const bomb = pngDeclaring(100_000, 100_000);
    expect(bomb.length).toBeLessThan(100);
    expect(await errorOf([bomb])).toBe("input 'image': element 0 declares 100000 x 100000 pixels, over the limit of 25000000 per image (PREPROCESSOR_MAX_IMAGE_PIXELS)");
  });

  it('refuses a request whose images together declare more pixels than a request may have', async () => {
    const image = await solid('png', 100, 100);
    expect(await errorOf([image, image, image], { maxRequestPixels: 25_000 })).toMatch(/the request's 3 images and their frames come to at least 30024 pixels, over the limit of 25000 per request/);
    expect(await errorOf([image, image], { maxRequestPixels: 25_000 })).toBe('');
  });

  it('refuses a request whose frames alone are over the request limit, before reading a header', async () => {
    const frames = Array.from({ length: 10 }, () => Buffer.from('x'));
    expect(await errorOf(frames, { maxRequestPixels: 79 })).toMatch(/the request's 10 images and their frames come to at least 80 pixels/);
  });

  it('refuses a call whose pipeline frame alone is over the request limit (an 8192² output asked for in 127 bytes)', async () => {
    const request: PreprocessRequest__Output = { modelName: 'm', pipeline: { ...pipeline, width: 4096, height: 4096 }, items: [{ images: encodeBytesElements([await solid('png')]), traceparent: '' }] };
    await expect(preprocess(request, undefined, undefined, { ...DEFAULT_PREPROCESS_LIMITS, maxRequestPixels: 1_000_000 })).rejects.toThrow(
      "model 'm': a pipeline frame of 4096 x 4096 pixels is over the limit of 1000000 per request (PREPROCESSOR_MAX_REQUEST_PIXELS)",
    );
  });

  it('answers a truncated image as one that cannot be decoded', async () => {
    const image = await solid('png', 40, 40);
    expect(await errorOf([image.subarray(0, image.length - 20)])).toMatch(/element 0 is not an image that can be decoded/);
  });
});

describe('declaredSize reads what the decoder will read', () => {
  const of = async (bytes: Buffer) => {
    const { width, height } = await sharp(bytes).metadata();
    return { width, height };
  };

  it('agrees with sharp on PNG and on baseline, progressive and EXIF-carrying JPEG', async () => {
    const image = sharp({ create: { width: 37, height: 23, channels: 3, background: { r: 200, g: 10, b: 10 } } });
    const cases: [format: 'png' | 'jpeg', bytes: Buffer][] = [
      ['png', await image.clone().png().toBuffer()],
      ['jpeg', await image.clone().jpeg().toBuffer()],
      ['jpeg', await image.clone().resize(41, 19).jpeg({ progressive: true }).toBuffer()],
      ['jpeg', await image.clone().withExif({ IFD0: { Copyright: 'infermesh' } }).jpeg().toBuffer()],
    ];
    for (const [format, bytes] of cases) expect(declaredSize(format, bytes)).toEqual(await of(bytes));
  });

  it("reads a bomb's declared size from its few bytes", () => {
    expect(declaredSize('png', pngDeclaring(100_000, 100_000))).toEqual({ width: 100_000, height: 100_000 });
  });

  it('leaves a header it cannot find to sharp (undefined), never a guess', () => {
    expect(declaredSize('png', Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))).toBeUndefined();
    expect(declaredSize('jpeg', Buffer.from([0xff, 0xd8, 0xff, 0xda, 0x00, 0x08, 1, 2, 3, 4, 5, 6]))).toBeUndefined();
    expect(declaredSize('jpeg', Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0xff, 0xff]))).toBeUndefined();
    // FF 00 where a marker should be: libjpeg skips such bytes, so a frame header behind them is not trusted.
    const fakeFrame = Buffer.from([0xff, 0xc0, 0x00, 0x0b, 0x08, 0x00, 0x01, 0x00, 0x01, 0x01, 0x01, 0x11, 0x00]);
    expect(declaredSize('jpeg', Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0x00, 0x00, 0x06, 0xff, 0xfe, 0x00, 0x0f]), fakeFrame]))).toBeUndefined();
  });
});
