/** Rows in the worker: JSON rows → one [N, F] tensor in the config's feature order, raw units. */
import { describe, expect, it } from 'vitest';
import { TensorError, type Tensor } from '@infermesh/tensor';
import { thrownBy } from '@infermesh/testing';
import type { TabularPipelineConfig } from './model-config.js';
import { checkFeatureTensor, featureWidth, MAX_ROW_BYTES, MAX_ROW_DEPTH, nestsDeeperThan, rowsToTensor as runTabularPipeline } from './tabular-rows.js';

type Feature = TabularPipelineConfig['features'][number];
const feature = (name: string, options: Partial<Omit<Feature, 'name'>> = {}): Feature => ({ name, mean: 0, std: 1, ...options });

function spec(features: Feature[], datatype: 'FP32' | 'FP64' = 'FP32'): TabularPipelineConfig {
  return { input: 'rows', output: 'features', features, datatype };
}

function rows(...elements: (object | string)[]): Tensor {
  const data = elements.map((e) => Buffer.from(typeof e === 'string' ? e : JSON.stringify(e)));
  return { name: 'rows', datatype: 'BYTES', shape: [data.length], data };
}

const failure = (run: () => unknown) => thrownBy(run, TensorError);

describe('runTabularPipeline', () => {
  it('writes features in the order of the spec, not of the row', () => {
    const out = runTabularPipeline(spec([feature('b'), feature('a'), feature('c')]), rows({ a: 1, c: 3, b: 2 }));
    expect(Array.from(out.data as Float32Array)).toEqual([2, 1, 3]);
  });

  it('produces one row per element with shape [N, F] under the pipeline output name', () => {
    const out = runTabularPipeline(spec([feature('a'), feature('b')]), rows({ a: 1, b: 2 }, { a: 3, b: 4 }, { a: 5, b: 6 }));
    expect(out.name).toBe('features');
    expect(out.shape).toEqual([3, 2]);
    expect(Array.from(out.data as Float32Array)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('keeps values in their raw units: standardization is in the model graph', () => {
    const out = runTabularPipeline(spec([feature('a', { mean: 10, std: 4 }), feature('b', { mean: -1, std: 0.5 })]), rows({ a: 18, b: 1 }));
    expect(Array.from(out.data as Float32Array)).toEqual([18, 1]);
  });

  it('accepts numbers written as strings', () => {
    const out = runTabularPipeline(spec([feature('a')]), rows({ a: '2.5' }));
    expect(Array.from(out.data as Float32Array)).toEqual([2.5]);
  });

  it('one-hot encodes a categorical feature over its categories, in place', () => {
    const colour = feature('colour', { categories: ['red', 'green', 'blue'] });
    const out = runTabularPipeline(spec([feature('a'), colour, feature('b')]), rows({ a: 7, colour: 'green', b: 8 }, { a: 9, colour: 'blue', b: 10 }));
    expect(out.shape).toEqual([2, 5]);
    expect(Array.from(out.data as Float32Array)).toEqual([7, 0, 1, 0, 8, 9, 0, 0, 1, 10]);
  });

  it('matches categories against the value written as a string', () => {
    const out = runTabularPipeline(spec([feature('grade', { categories: ['1', '2'] })]), rows({ grade: 2 }));
    expect(Array.from(out.data as Float32Array)).toEqual([0, 1]);
  });

  it('writes FP64 when the spec asks for it', () => {
    const out = runTabularPipeline(spec([feature('a')], 'FP64'), rows({ a: 0.1 }));
    expect(out.datatype).toBe('FP64');
    expect(out.data).toBeInstanceOf(Float64Array);
    expect((out.data as Float64Array)[0]).toBe(0.1);
  });

  it('accepts a value beyond FP32 when the model takes FP64', () => {
    const out = runTabularPipeline(spec([feature('a')], 'FP64'), rows({ a: 1e39 }));
    expect((out.data as Float64Array)[0]).toBe(1e39);
  });

  it('featureWidth counts one column per numeric feature and one per category', () => {
    expect(featureWidth(spec([feature('a'), feature('c', { categories: ['x', 'y', 'z'] }), feature('b')]))).toBe(5);
  });
});

describe('runTabularPipeline refusals', () => {
  const numeric = spec([feature('a'), feature('b')]);

  it('refuses an unknown category, naming the row, the feature and the categories', () => {
    const colour = spec([feature('colour', { categories: ['red', 'green'] })]);
    const error = failure(() => runTabularPipeline(colour, rows({ colour: 'red' }, { colour: 'purple' })));
    expect(error.message).toContain("input 'rows'");
    expect(error.message).toContain('row 1');
    expect(error.message).toContain("feature 'colour'");
    expect(error.message).toContain('purple');
    expect(error.message).toContain('red, green');
  });

  it('refuses a row without a value for a feature, naming the row and the feature', () => {
    const error = failure(() => runTabularPipeline(numeric, rows({ a: 1, b: 2 }, { a: 1, b: 2 }, { a: 1 })));
    expect(error.message).toContain('row 2');
    expect(error.message).toContain("feature 'b'");
  });

  it('treats a null value as missing', () => {
    const error = failure(() => runTabularPipeline(numeric, rows({ a: null, b: 2 })));
    expect(error.message).toContain('row 0');
    expect(error.message).toContain("feature 'a'");
  });

  it.each([['a word', 'abc'], ['an empty string', ''], ['a boolean', true], ['an array', [1]]])('refuses %s for a numeric feature, naming the row and the feature', (_, value) => {
    const error = failure(() => runTabularPipeline(numeric, rows({ a: 1, b: 2 }, { a: value, b: 2 })));
    expect(error.message).toContain('row 1');
    expect(error.message).toContain("feature 'a'");
    expect(error.message).toContain('expected a number');
  });

  it('refuses a number beyond what FP32 holds instead of sending the model Infinity', () => {
    const error = failure(() => runTabularPipeline(numeric, rows({ a: 1, b: 2 }, { a: -1e39, b: 2 })));
    expect(error.message).toContain('row 1');
    expect(error.message).toContain("feature 'a'");
    expect(error.message).toContain('FP32');
  });

  it('refuses a row nested too deeply to parse with a clear message, without overflowing the stack', () => {
    const deep = `{"a":${'['.repeat(100_000)}${']'.repeat(100_000)},"b":1}`;
    const error = failure(() => runTabularPipeline(numeric, rows(deep)));
    expect(error.message).toContain('row 0');
    expect(error.message.length).toBeLessThan(400);
  });

  it('refuses a row nested deeper than the limit before parsing it, naming the row and the limit', () => {
    const deep = `{"a":${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)},"b":1}`;
    const error = failure(() => runTabularPipeline(numeric, rows({ a: 1, b: 2 }, deep)));
    expect(error.message).toBe(`input 'rows': row 1 nests objects or arrays deeper than ${MAX_ROW_DEPTH} levels; a row is one flat JSON object of feature values`);
  });

  it('counts nesting outside strings only', () => {
    expect(nestsDeeperThan(Buffer.from(`{"a":"${'['.repeat(50)}\\"{{{{","b":[1]}`), 2)).toBe(false);
    expect(nestsDeeperThan(Buffer.from('{"a":[[1]]}'), 2)).toBe(true);
  });

  it('refuses a row over the size limit without parsing it', () => {
    const error = failure(() => runTabularPipeline(numeric, rows({ a: 1, b: 2, pad: 'x'.repeat(MAX_ROW_BYTES) })));
    expect(error.message).toMatch(new RegExp(`^input 'rows': row 0 is \\d+ bytes, over the limit of ${MAX_ROW_BYTES}$`));
  });

  it.each([['NaN', 'NaN'], ['Infinity', 'Infinity'], ['1e39', '1e39']])('refuses %s written as a string, naming the row and the feature', (_, value) => {
    const error = failure(() => runTabularPipeline(numeric, rows({ a: 1, b: value })));
    expect(error.message).toMatch(/row 0 feature 'b'/);
  });

  it('refuses a feature tensor sent as it is that holds NaN or Infinity, naming the row and the feature', () => {
    const features = (values: number[]): Tensor => ({ name: 'features', datatype: 'FP32', shape: [2, 2], data: Float32Array.from(values) });
    expect(() => checkFeatureTensor(numeric, features([1, 2, 3, 4]))).not.toThrow();
    expect(failure(() => checkFeatureTensor(numeric, features([1, 2, 3, NaN]))).message).toBe("input 'features': row 1 feature 'b' is NaN; features must be finite numbers");
    expect(failure(() => checkFeatureTensor(numeric, features([1, 2, -Infinity, 4]))).message).toBe("input 'features': row 1 feature 'a' is -Infinity; features must be finite numbers");
  });

  it('names a wrong value briefly, never by echoing all of it', () => {
    const error = failure(() => runTabularPipeline(numeric, rows({ a: 'x'.repeat(100_000), b: 2 })));
    expect(error.message.length).toBeLessThan(200);
  });

  it('refuses a row that is not JSON, naming the row', () => {
    const error = failure(() => runTabularPipeline(numeric, rows({ a: 1, b: 2 }, '{a: 1')));
    expect(error.message).toContain("input 'rows'");
    expect(error.message).toContain('row 1');
    expect(error.message).toContain('not valid JSON');
  });

  it.each([['an array', '[1, 2]'], ['a number', '3'], ['null', 'null'], ['a string', '"a"']])('refuses a row that is %s rather than an object, naming the row', (_, text) => {
    const error = failure(() => runTabularPipeline(numeric, rows(text)));
    expect(error.message).toContain('row 0');
    expect(error.message).toContain('JSON object');
  });

  it('refuses an input whose datatype is not BYTES', () => {
    const error = failure(() => runTabularPipeline(numeric, { name: 'rows', datatype: 'FP32', shape: [1], data: new Float32Array(1) }));
    expect(error.message).toMatch(/input 'rows'.*FP32.*BYTES/);
  });

  it('refuses an input with no rows', () => {
    failure(() => runTabularPipeline(numeric, rows()));
  });
});
