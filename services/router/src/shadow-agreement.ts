/**
 * Whether a shadow's answer agrees with the client's, from what the workers told (the router
 * never decodes tensors): the same predicted labels, in order, for a classifier; for a model
 * without labels, the same output sample within a tolerance. Anything else is not compared:
 * agreement unknown.
 */

/**
 * The tolerance of two output samples, numpy's `isclose` rule: |a − b| ≤ atol + rtol·|b|, b
 * the client's value. Loose enough for the same model exported or run differently (FP32
 * rounding, another execution provider), tight enough that a retrained model differs. One
 * setting for every model; a per-model tolerance would belong in its traffic policy.
 */
export const SAMPLE_RTOL = 1e-3;
export const SAMPLE_ATOL = 1e-5;

/** What one answer told, as far as agreement goes. */
export interface ComparedAnswer {
  /** One per input for a classifier; empty otherwise. */
  predictedLabels: readonly string[];
  /** The first values of a label-less model's first output; empty when not sent. */
  outputSample: readonly number[];
}

export interface Agreement {
  compared: boolean;
  agreed: boolean;
}

const UNKNOWN: Agreement = { compared: false, agreed: false };

/** Agreement of two answers that both succeeded. */
export function shadowAgreement(client: ComparedAnswer, shadow: ComparedAnswer): Agreement {
  const labels = shadow.predictedLabels;
  if (labels.length > 0 || client.predictedLabels.length > 0) {
    if (labels.length === 0 || labels.length !== client.predictedLabels.length) return UNKNOWN;
    return { compared: true, agreed: labels.every((label, i) => label === client.predictedLabels[i]) };
  }
  const sample = shadow.outputSample;
  // Different lengths: different shapes of output, or a side that did not sample; nothing to line up.
  if (sample.length === 0 || sample.length !== client.outputSample.length) return UNKNOWN;
  return { compared: true, agreed: sample.every((value, i) => withinTolerance(value, client.outputSample[i])) };
}

/** |a − b| ≤ atol + rtol·|b|; NaN agrees with nothing (as in numpy). */
function withinTolerance(shadow: number, client: number): boolean {
  if (shadow === client) return true; // the same infinity
  return Math.abs(shadow - client) <= SAMPLE_ATOL + SAMPLE_RTOL * Math.abs(client);
}
