/** Preprocess: the images of several requests in one call, one frame of pixels per request, each answered on its own. */
import { describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { encodeBytesElements, TensorError } from '@infermesh/tensor';
import type { ImagePipeline__Output, PreprocessRequest__Output } from '@infermesh/contracts';
import { Status } from '@infermesh/grpc';
import { preprocessResultBytes, preprocessorService } from '@infermesh/contracts';
import { preprocess } from './preprocessor-service.js';

const responseCodec = preprocessorService().Preprocess as unknown as { responseSerialize(response: unknown): Buffer };
const preprocessResponseBytes = (response: unknown) => responseCodec.responseSerialize(response).length;

const pipeline: ImagePipeline__Output = {
  input: 'image', output: 'x', width: 4, height: 2, resize: 'stretch', mean: [0, 0, 0], std: [1, 1, 1],
  layout: 'NCHW', datatype: 'FP32', channelOrder: 'RGB', scale: 1 / 255, padValue: 0,
};

const solid = (r: number, g: number, b: number) => sharp({ create: { width: 3, height: 3, channels: 3, background: { r, g, b } } }).png().toBuffer();

function request(items: Buffer[][], overrides: Partial<PreprocessRequest__Output> = {}): PreprocessRequest__Output {
  return { modelName: 'text-direction', pipeline, items: items.map((images) => ({ images: encodeBytesElements(images), traceparent: '' })), ...overrides };
}

describe('preprocess', () => {
  it('answers each item with its images as UINT8 RGB frames [count, height, width, 3]', async () => {
    const response = await preprocess(request([[await solid(10, 20, 30)], [await solid(40, 50, 60), await solid(70, 80, 90)]]));
    expect(response.results).toHaveLength(2);
    const [one, two] = response.results!;
    expect(one.count).toBe(1);
    expect(Array.from(one.pixels as Buffer)).toEqual(Array.from({ length: 8 }, () => [10, 20, 30]).flat());
    expect(two.count).toBe(2);
    expect((two.pixels as Buffer).length).toBe(2 * 4 * 2 * 3);
    expect(Array.from((two.pixels as Buffer).subarray(24, 27))).toEqual([70, 80, 90]);
  });

  it('answers each image\'s statistics with its item, in order', async () => {
    const response = await preprocess(request([[await solid(10, 20, 30)], [await solid(200, 200, 200), await solid(0, 0, 0)]]));
    const [one, two] = response.results!;
    expect(one.statistics).toEqual([{ width: 3, height: 3, brightness: expect.closeTo(0.299 * 10 + 0.587 * 20 + 0.114 * 30, 10), contrast: 0 }]);
    expect(two.statistics!.map((s) => [s.width, s.brightness])).toEqual([[3, expect.closeTo(200, 10)], [3, 0]]);
  });

  it('fails only the item whose image cannot be read, naming the element', async () => {
    const response = await preprocess(request([[await solid(1, 2, 3)], [await solid(4, 5, 6), Buffer.from('not an image')], [await solid(7, 8, 9)]]));
    expect(response.results!.map((r) => r.error ?? '')).toEqual(['', expect.stringMatching(/input 'image': element 1 is not a known image format/), '']);
    expect(response.results![2].count).toBe(1);
  });

  it('fails an item with no images', async () => {
    const response = await preprocess(request([[]]));
    expect(response.results![0].error).toMatch(/input 'image': no images/);
  });

  it('fails an item whose BYTES contents are malformed', async () => {
    const response = await preprocess({ ...request([]), items: [{ images: Buffer.from([9, 0, 0, 0, 1]), traceparent: '' }] });
    expect(response.results![0].error).toMatch(/element 0 declares 9 bytes/);
  });

  it('refuses a call without a pipeline, or with a frame too large, before decoding anything', async () => {
    await expect(preprocess(request([[await solid(1, 1, 1)]], { pipeline: null }))).rejects.toThrow(TensorError);
    await expect(preprocess(request([[await solid(1, 1, 1)]], { pipeline: { ...pipeline, width: 8192, height: 8192 } }))).rejects.toThrow(/outside 1 to 4096/);
  });

  it('refuses with RESOURCE_EXHAUSTED, before decoding, a call whose answer would not fit one message', async () => {
    // Three items: each answers a 24-byte frame or an error of up to 1 KiB, and framing.
    const limit = 3 * preprocessResultBytes(1, 24);
    const call = preprocess(request([[Buffer.from('a')], [Buffer.from('b')], [Buffer.from('c')]]), limit - 1);
    await expect(call).rejects.toMatchObject({ code: Status.RESOURCE_EXHAUSTED, message: expect.stringMatching(new RegExp(`3 images would answer ${limit} bytes .* over the ${limit - 1}-byte message limit`)) });
    const fits = await preprocess(request([[await solid(1, 2, 3)], [await solid(4, 5, 6)], [await solid(7, 8, 9)]]), limit);
    expect(fits.results!.map((r) => r.count)).toEqual([1, 1, 1]);
    expect(preprocessResponseBytes(fits)).toBeLessThanOrEqual(limit);
  });

  it('answers within the size worker and preprocessor agree on, statistics included', async () => {
    // Frames far larger than an error message: the bound is the pixels, their framing and each image's statistics.
    const large = { ...pipeline, width: 100, height: 100 };
    const images = [await solid(1, 2, 3), await solid(4, 5, 6)];
    const limit = preprocessResultBytes(images.length, 100 * 100 * 3);
    const response = await preprocess(request([images], { pipeline: large }), limit);
    expect(response.results![0].statistics).toHaveLength(2);
    expect(preprocessResponseBytes(response)).toBeLessThanOrEqual(limit);
  });

  it('stops decoding the images of a call that ended', async () => {
    const controller = new AbortController();
    controller.abort(new DOMException('deadline exceeded', 'TimeoutError'));
    await expect(preprocess(request([[await solid(1, 2, 3)]]), undefined, controller.signal)).rejects.toMatchObject({ name: 'TimeoutError' });
  });
});
