/** Prediction records for tests: a successful iris request, with whatever a test changes. */
import type { PredictionRecord__Output } from '@infermesh/contracts';

export function record(overrides: Partial<PredictionRecord__Output> = {}): PredictionRecord__Output {
  return {
    requestId: '',
    model: 'iris',
    version: '1',
    workerId: 'w1',
    statusCode: 0,
    errorMessage: '',
    latencyUs: '1000',
    preprocessUs: '0',
    queueUs: '100',
    computeUs: '200',
    batchSize: 1,
    traceId: '',
    timestampMs: '1700000000000',
    items: 1,
    traceparent: '',
    clientId: '',
    driftBins: Buffer.alloc(0),
    profileId: '',
    predictedLabels: [],
    shadowOfVersion: '',
    shadowCompared: false,
    shadowAgreed: false,
    ...overrides,
  };
}
