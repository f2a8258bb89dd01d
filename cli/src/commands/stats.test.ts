import { describe, expect, it } from 'vitest';
import type { ModelAccuracy__Output, ModelDrift__Output } from '@infermesh/contracts';
import { describeAccuracy, describeDrift, describeFeedback, psiReading } from './stats.js';

const drift = (over: Partial<ModelDrift__Output>): ModelDrift__Output => ({
  model: 'iris', version: '1', windowInputs: '151', windowMs: '60000', enoughInputs: true, maxPsi: 0.31, profileId: 'p',
  features: [{ feature: 'sepal_length', psi: 0.02, observed: [], expected: [] }, { feature: 'petal_length', psi: 0.31, observed: [], expected: [] }],
  ...over,
});

const outcomes = { applied: '0', unknown: '0', expired: '0', mismatched: '0', ambiguous: '0' };
const accuracy = (over: Partial<ModelAccuracy__Output>): ModelAccuracy__Output => ({
  model: 'iris', version: '1', labelled: '0', correct: '0', recentAccuracy: 0, recentLabelled: '0', confusion: [], feedback: { ...outcomes }, ...over,
});

describe('infermesh stats, how a model is watched', () => {
  it('reads the PSI as people do: under 0.1 stable, to 0.25 moderate, above large', () => {
    expect([0.05, 0.1, 0.25, 0.26].map(psiReading)).toEqual(['stable', 'moderate shift', 'moderate shift', 'large shift']);
  });

  it('names the feature that drifted most, with the window it was judged over', () => {
    expect(describeDrift(drift({}))).toBe('drift     iris:1  60 s window, 151 inputs: max PSI 0.310 (petal_length), large shift');
  });

  it('says when the window holds too few inputs to judge, rather than a PSI', () => {
    expect(describeDrift(drift({ enoughInputs: false, windowInputs: '3' }))).toBe('drift     iris:1  60 s window, 3 inputs: too few to judge');
  });

  it('gives a version\'s accuracy once something is labelled, and nothing before', () => {
    expect(describeAccuracy(accuracy({}))).toBeUndefined();
    expect(describeAccuracy(accuracy({ labelled: '150', correct: '146', recentAccuracy: 0.9733, recentLabelled: '150' })))
      .toBe('accuracy  iris:1  0.973 over the last 150 labelled inputs (146 of 150 correct in all)');
  });

  it('adds up each model\'s feedback outcomes over its versions and the feedback that joined none', () => {
    const lines = describeFeedback([
      accuracy({ feedback: { ...outcomes, applied: '140' } }),
      accuracy({ version: '2', feedback: { ...outcomes, applied: '10', mismatched: '1' } }),
      accuracy({ version: '', feedback: { ...outcomes, unknown: '4', expired: '2', ambiguous: '3' } }),
    ]);
    expect(lines).toEqual(['feedback  iris  applied 150, unknown 4, expired 2, mismatched 1, ambiguous 3']);
  });
});
