/** preprocess(): the pipeline input replaced by the model tensor, every other input passed through raw. */
import { describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { ServiceError, Status } from '@infermesh/grpc';
import { decodeBytesElements, encodeBytesElements, TensorError } from '@infermesh/tensor';
import type { PipelineSpec__Output, PreprocessRequest__Output } from '@infermesh/contracts';
import { preprocess } from './preprocessor-service.js';

const tabular: PipelineSpec__Output = {
  tabular: {
    input: 'rows', output: 'features', datatype: 'FP32',
    features: [{ name: 'a', mean: 0, std: 0, categories: [] }, { name: 'b', mean: 0, std: 0, categories: [] }],
  },
};

function input(name: string, datatype: string, shape: number[]) {
  return { name, datatype, shape: shape.map(String), parameters: {}, contents: null };
}

const jsonRows = (...rows: object[]) => encodeBytesElements(rows.map((r) => Buffer.from(JSON.stringify(r))));

function request(overrides: Partial<PreprocessRequest__Output> = {}): PreprocessRequest__Output {
  return {
    modelName: 'iris',
    pipeline: tabular,
    inputs: [input('rows', 'BYTES', [2])],
    rawInputContents: [jsonRows({ a: 1, b: 2 }, { a: 3, b: 4 })],
    ...overrides,
  };
}

describe('preprocess', () => {
  it('replaces the pipeline input with the pipeline output, as raw contents', async () => {
    const response = await preprocess(request());
    expect(response.inputs).toEqual([{ name: 'features', datatype: 'FP32', shape: ['2', '2'] }]);
    const raw = response.rawInputContents![0] as Buffer;
    expect(Array.from(new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength)))).toEqual([1, 2, 3, 4]);
  });

  it('passes every other input through unchanged, re-encoded raw, in request order', async () => {
    const temperature = new Float32Array([0.5, 1.5]);
    const tags = encodeBytesElements([Buffer.from('x'), Buffer.from('yz')]);
    const response = await preprocess(request({
      inputs: [input('temperature', 'FP32', [1, 2]), input('rows', 'BYTES', [1]), input('tags', 'BYTES', [2])],
      rawInputContents: [Buffer.from(temperature.buffer), jsonRows({ a: 5, b: 6 }), tags],
    }));
    expect(response.inputs).toEqual([
      { name: 'temperature', datatype: 'FP32', shape: ['1', '2'] },
      { name: 'features', datatype: 'FP32', shape: ['1', '2'] },
      { name: 'tags', datatype: 'BYTES', shape: ['2'] },
    ]);
    expect(Buffer.from(response.rawInputContents![0] as Uint8Array)).toEqual(Buffer.from(temperature.buffer));
    expect(decodeBytesElements('tags', response.rawInputContents![2] as Uint8Array).map(String)).toEqual(['x', 'yz']);
  });

  it('runs an image pipeline on encoded images', async () => {
    const png = await sharp(Buffer.from([10, 20, 30]), { raw: { width: 1, height: 1, channels: 3 } }).png().toBuffer();
    const image: PipelineSpec__Output = {
      image: { input: 'image', output: 'x', width: 1, height: 1, resize: 'stretch', mean: [], std: [], layout: 'NCHW', datatype: 'UINT8', channelOrder: 'RGB', scale: 0, padValue: 0 },
    };
    const response = await preprocess(request({ pipeline: image, inputs: [input('image', 'BYTES', [1])], rawInputContents: [encodeBytesElements([png])] }));
    expect(response.inputs).toEqual([{ name: 'x', datatype: 'UINT8', shape: ['1', '3', '1', '1'] }]);
    expect(Array.from(response.rawInputContents![0] as Uint8Array)).toEqual([10, 20, 30]);
  });

  it('refuses a pipeline input whose shape is not [N]', async () => {
    const error = await preprocess(request({ inputs: [input('rows', 'BYTES', [1, 2])] })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TensorError);
    expect((error as Error).message).toContain("input 'rows'");
    expect((error as Error).message).toContain('expected [N]');
  });

  it('refuses a scalar pipeline input', async () => {
    const error = await preprocess(request({ inputs: [input('rows', 'BYTES', [])], rawInputContents: [jsonRows({ a: 1, b: 2 })] })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TensorError);
    expect((error as Error).message).toContain('expected [N]');
  });

  it('refuses a request without the pipeline input, naming the model and the input', async () => {
    const error = await preprocess(request({ inputs: [input('other', 'BYTES', [2])] })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TensorError);
    expect((error as Error).message).toBe("model 'iris' expects input 'rows'");
  });

  it('refuses a request without a pipeline with INVALID_ARGUMENT', async () => {
    const error = await preprocess(request({ pipeline: null })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ServiceError);
    expect((error as ServiceError).code).toBe(Status.INVALID_ARGUMENT);
    expect((error as Error).message).toContain("'iris'");
  });
});
