/** Classification figures from (true, predicted) class pairs. */

export interface ConfusionMatrix {
  classes: readonly string[];
  /** `counts[t][p]`: items of true class `classes[t]` predicted as `classes[p]`. */
  counts: number[][];
}

export interface ClassificationFigures {
  items: number;
  correct: number;
  /** correct / items (0 for no items). */
  accuracy: number;
  confusion: ConfusionMatrix;
}

/**
 * Counts each (true, predicted) pair, by class index. A prediction outside the classes (an item
 * the mesh failed to answer, say) is given as -1: it counts as wrong and lands in no cell.
 */
export function classificationFigures(classes: readonly string[], pairs: readonly { actual: number; predicted: number }[]): ClassificationFigures {
  const counts = classes.map(() => new Array<number>(classes.length).fill(0));
  let correct = 0;
  for (const { actual, predicted } of pairs) {
    if (!Number.isInteger(actual) || actual < 0 || actual >= classes.length) throw new RangeError(`true class index ${actual} is not one of the ${classes.length} classes`);
    if (predicted === actual) correct++;
    if (Number.isInteger(predicted) && predicted >= 0 && predicted < classes.length) counts[actual][predicted]++;
  }
  return { items: pairs.length, correct, accuracy: pairs.length ? correct / pairs.length : 0, confusion: { classes, counts } };
}
