/** The mesh's subjects are part of its contracts (libs/contracts), beside who may use them. */
export { subjects, streamName, token, keptPredictionsBucket, trafficBucket, type Subjects, type StreamKind } from '@infermesh/contracts';
