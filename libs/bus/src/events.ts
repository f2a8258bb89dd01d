import { messageCodec, type MessageCodec } from '@infermesh/contracts';
import type {
  WorkerHeartbeat, WorkerHeartbeat__Output, PredictionRecord, PredictionRecord__Output, PredictionBatch, PredictionBatch__Output,
  Feedback, Feedback__Output, KeptPrediction, KeptPrediction__Output, Alert, Alert__Output, TrafficPolicy, TrafficPolicy__Output,
} from '@infermesh/contracts';

/** Protobuf codecs of the events carried on NATS. */
export const events = {
  heartbeat: lazy(() => messageCodec<WorkerHeartbeat, WorkerHeartbeat__Output>('infermesh.v1.WorkerHeartbeat')),
  prediction: lazy(() => messageCodec<PredictionRecord, PredictionRecord__Output>('infermesh.v1.PredictionRecord')),
  predictionBatch: lazy(() => messageCodec<PredictionBatch, PredictionBatch__Output>('infermesh.v1.PredictionBatch')),
  feedback: lazy(() => messageCodec<Feedback, Feedback__Output>('infermesh.v1.Feedback')),
  keptPrediction: lazy(() => messageCodec<KeptPrediction, KeptPrediction__Output>('infermesh.v1.KeptPrediction')),
  alert: lazy(() => messageCodec<Alert, Alert__Output>('infermesh.v1.Alert')),
  trafficPolicy: lazy(() => messageCodec<TrafficPolicy, TrafficPolicy__Output>('infermesh.v1.TrafficPolicy')),
};

function lazy<In, Out>(make: () => MessageCodec<In, Out>): MessageCodec<In, Out> {
  let codec: MessageCodec<In, Out> | undefined;
  return {
    encode: (message) => (codec ??= make()).encode(message),
    decode: (bytes) => (codec ??= make()).decode(bytes),
  };
}
