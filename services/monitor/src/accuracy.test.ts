/**
 * Accuracy per model version from feedback joined with predictions: labelled and correct
 * inputs, the recent accuracy over a ring of the last outcomes, a confusion matrix bounded
 * by the model's class labels, and what became of each feedback, counted per model.
 */
import { describe, expect, it } from 'vitest';
import { AccuracyTracker, MAX_CLASSES } from './accuracy.js';
import { KnownModels } from './known-models.js';
import { PrometheusText } from './prometheus-text.js';

const CLASSES = ['setosa', 'versicolor', 'virginica'];

function tracker(window = 1000) {
  const known = new KnownModels(10);
  known.add('iris', '1');
  const accuracy = new AccuracyTracker({ known, window });
  accuracy.learnClasses('iris', '1', CLASSES);
  return { accuracy, known };
}

const iris = (predictedLabels: string[]) => ({ model: 'iris', version: '1', predictedLabels });

function prometheus(accuracy: AccuracyTracker): string {
  const out = new PrometheusText();
  accuracy.writePrometheus(out);
  return out.toString();
}

describe('joining feedback with a prediction', () => {
  it('counts each labelled input, and the inputs whose prediction equals the label as correct', () => {
    const { accuracy } = tracker();
    expect(accuracy.apply(iris(['setosa', 'virginica', 'setosa']), ['setosa', 'versicolor', 'setosa'])).toBe('applied');
    expect(accuracy.readings({ model: 'iris', version: '1' })[0]).toMatchObject({ labelled: 3, correct: 2, recentLabelled: 3, feedback: { applied: 1, unknown: 0, expired: 0, mismatched: 0, ambiguous: 0 } });
    expect(accuracy.readings()[0].recentAccuracy).toBeCloseTo(2 / 3);
  });

  it('counts labels whose number differs from the prediction\'s inputs as mismatched, labelling nothing', () => {
    const { accuracy } = tracker();
    expect(accuracy.apply(iris(['setosa', 'setosa']), ['setosa'])).toBe('mismatched');
    expect(accuracy.readings()[0]).toMatchObject({ labelled: 0, correct: 0, feedback: { applied: 0, mismatched: 1 } });
  });

  it('counts a prediction of a version no worker announced under the model with version _unknown', () => {
    const { accuracy } = tracker();
    accuracy.apply({ model: 'iris', version: '9', predictedLabels: ['setosa'] }, ['setosa']);
    accuracy.apply({ model: 'made-up', version: '1', predictedLabels: ['a'] }, ['a']);
    expect(accuracy.readings().map((r) => `${r.model}:${r.version}`)).toEqual(['_unknown:_unknown', 'iris:_unknown']);
  });
});

describe('recent accuracy', () => {
  it('is taken over the last MONITOR_ACCURACY_WINDOW labelled inputs only', () => {
    const { accuracy } = tracker(4);
    accuracy.apply(iris(['setosa', 'setosa', 'setosa', 'setosa']), ['virginica', 'virginica', 'virginica', 'virginica']);
    accuracy.apply(iris(['setosa', 'setosa', 'setosa']), ['setosa', 'setosa', 'setosa']);
    expect(accuracy.readings()[0]).toMatchObject({ labelled: 7, correct: 3, recentLabelled: 4, recentAccuracy: 0.75 });
  });

  it('answers the last n outcomes of a series, fewer when it has fewer, and nothing without any', () => {
    const { accuracy } = tracker();
    expect(accuracy.recent('iris', '1', 10)).toBeUndefined();
    accuracy.apply(iris(['setosa', 'setosa', 'setosa']), ['virginica', 'setosa', 'setosa']);
    expect(accuracy.recent('iris', '1', 2)).toEqual({ accuracy: 1, labelled: 2 });
    expect(accuracy.recent('iris', '1', 100)).toEqual({ accuracy: 2 / 3, labelled: 3 });
    expect(accuracy.recent('iris', '2', 100)).toBeUndefined();
  });
});

describe('confusion matrix', () => {
  it('counts actual x predicted over the model\'s class labels, other true labels as _other', () => {
    const { accuracy } = tracker();
    accuracy.apply(iris(['setosa', 'setosa', 'virginica', 'setosa']), ['setosa', 'virginica', 'virginica', 'a label no class has']);
    expect(accuracy.readings()[0].confusion).toEqual([
      { actual: '_other', predicted: 'setosa', count: 1 },
      { actual: 'setosa', predicted: 'setosa', count: 1 },
      { actual: 'virginica', predicted: 'setosa', count: 1 },
      { actual: 'virginica', predicted: 'virginica', count: 1 },
    ]);
  });

  it('takes at most 64 class labels, so any labels make at most 65 x 65 cells', () => {
    const { accuracy } = tracker();
    const many = Array.from({ length: 500 }, (_, i) => `class-${i}`);
    accuracy.learnClasses('iris', '1', many);
    accuracy.apply(iris(many), [...many].reverse());
    const cells = accuracy.readings()[0].confusion;
    const labels = new Set(cells.flatMap((c) => [c.actual, c.predicted]));
    expect(labels.size).toBe(MAX_CLASSES + 1);
    expect(cells.reduce((sum, c) => sum + c.count, 0)).toBe(500);
  });
});

describe('feedback that joined nothing', () => {
  it('is counted on the model, under version "", and on _unknown for a model no worker announced', () => {
    const { accuracy } = tracker();
    accuracy.apply(iris(['setosa']), ['setosa']);
    accuracy.unjoined('iris', 'unknown');
    accuracy.unjoined('iris', 'expired');
    accuracy.unjoined('made-up', 'unknown');
    expect(accuracy.readings().map((r) => [r.model, r.version, r.feedback])).toEqual([
      ['_unknown', '', { applied: 0, unknown: 1, expired: 0, mismatched: 0, ambiguous: 0 }],
      ['iris', '', { applied: 0, unknown: 1, expired: 1, mismatched: 0, ambiguous: 0 }],
      ['iris', '1', { applied: 1, unknown: 0, expired: 0, mismatched: 0, ambiguous: 0 }],
    ]);
    expect(accuracy.readings({ model: 'iris', version: '1' })).toHaveLength(1);
  });

  it('shows in infermesh_feedback_total per model and outcome, beside the labelled and correct counts', () => {
    const { accuracy } = tracker();
    accuracy.apply(iris(['setosa', 'setosa']), ['setosa', 'virginica']);
    accuracy.apply(iris(['setosa']), []);
    accuracy.unjoined('iris', 'unknown');
    const text = prometheus(accuracy);
    expect(text).toContain('infermesh_feedback_total{model="iris",outcome="applied"} 1\n');
    expect(text).toContain('infermesh_feedback_total{model="iris",outcome="mismatched"} 1\n');
    expect(text).toContain('infermesh_feedback_total{model="iris",outcome="unknown"} 1\n');
    expect(text).toContain('infermesh_feedback_total{model="iris",outcome="expired"} 0\n');
    expect(text).toContain('infermesh_model_labelled_total{model="iris",version="1"} 2\n');
    expect(text).toContain('infermesh_model_correct_total{model="iris",version="1"} 1\n');
    expect(text).toContain('infermesh_model_accuracy_recent{model="iris",version="1"} 0.5\n');
    expect(text).not.toContain('version=""');
  });
});

describe('snapshot', () => {
  it('gives back the counts, ring, confusion matrix, outcomes and class labels it saved', () => {
    const { accuracy, known } = tracker(5);
    accuracy.apply(iris(['setosa', 'setosa', 'virginica']), ['setosa', 'virginica', 'virginica']);
    accuracy.apply(iris(['setosa', 'setosa', 'setosa', 'setosa']), ['setosa', 'setosa', 'versicolor', 'setosa']);
    accuracy.apply(iris(['setosa']), []);
    accuracy.unjoined('iris', 'expired');
    accuracy.drop('undecodable');
    const restored = new AccuracyTracker({ known, window: 5 });
    restored.restore(JSON.parse(JSON.stringify(accuracy.save())) as ReturnType<AccuracyTracker['save']>);
    expect(restored.readings()).toEqual(accuracy.readings());
    expect(restored.recent('iris', '1', 3)).toEqual(accuracy.recent('iris', '1', 3));
    expect(restored.droppedCounts()).toEqual({ undecodable: 1, failed: 0 });
    // The class labels came back too: a new label of a class is its own cell, not _other.
    restored.apply(iris(['versicolor']), ['versicolor']);
    expect(restored.readings({ version: '1' })[0].confusion).toContainEqual({ actual: 'versicolor', predicted: 'versicolor', count: 1 });
  });

  it('keeps the most recent outcomes when restored with a smaller window', () => {
    const { accuracy, known } = tracker(10);
    accuracy.apply(iris(['a', 'a', 'a', 'a', 'a', 'a']), ['b', 'b', 'b', 'a', 'a', 'a']);
    const restored = new AccuracyTracker({ known, window: 3 });
    restored.restore(accuracy.save());
    expect(restored.readings()[0]).toMatchObject({ labelled: 6, correct: 3, recentLabelled: 3, recentAccuracy: 1 });
  });
});
