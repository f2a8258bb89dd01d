import { describe, expect, it } from 'vitest';
import { SAMPLE_ATOL, SAMPLE_RTOL, shadowAgreement } from './shadow-agreement.js';

const labelled = (...predictedLabels: string[]) => ({ predictedLabels, outputSample: [] });
const sampled = (...outputSample: number[]) => ({ predictedLabels: [], outputSample });

describe('shadowAgreement', () => {
  it('agrees when a classifier\'s labels are the same, in order', () => {
    expect(shadowAgreement(labelled('a', 'b'), labelled('a', 'b'))).toEqual({ compared: true, agreed: true });
  });

  it('disagrees when a label differs', () => {
    expect(shadowAgreement(labelled('a', 'b'), labelled('a', 'c'))).toEqual({ compared: true, agreed: false });
  });

  it('does not compare labels on one side only', () => {
    expect(shadowAgreement(labelled('a'), sampled(1))).toEqual({ compared: false, agreed: false });
    expect(shadowAgreement(sampled(1), labelled('a'))).toEqual({ compared: false, agreed: false });
  });

  it('agrees when every sampled value is within atol + rtol·|client value|', () => {
    const client = [100, -3, 0];
    const shadow = [100 * (1 + SAMPLE_RTOL * 0.9), -3 * (1 - SAMPLE_RTOL * 0.9), SAMPLE_ATOL * 0.9];
    expect(shadowAgreement(sampled(...client), sampled(...shadow))).toEqual({ compared: true, agreed: true });
  });

  it('disagrees when one sampled value is outside the tolerance', () => {
    expect(shadowAgreement(sampled(100, 1), sampled(100, 1 + 2 * SAMPLE_RTOL))).toEqual({ compared: true, agreed: false });
    expect(shadowAgreement(sampled(0), sampled(2 * SAMPLE_ATOL))).toEqual({ compared: true, agreed: false });
  });

  it('disagrees on NaN', () => {
    expect(shadowAgreement(sampled(Number.NaN), sampled(Number.NaN))).toEqual({ compared: true, agreed: false });
  });

  it('does not compare samples of different lengths', () => {
    expect(shadowAgreement(sampled(1, 2), sampled(1, 2, 3))).toEqual({ compared: false, agreed: false });
  });

  it('does not compare answers that carry neither labels nor samples', () => {
    expect(shadowAgreement(sampled(), sampled())).toEqual({ compared: false, agreed: false });
  });
});
