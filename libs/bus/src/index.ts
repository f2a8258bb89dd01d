export { connectBus, FEEDBACK_DUPLICATE_WINDOW_MS, type Bus, type BusOptions, type DurableAck, type Received } from './bus.js';
export { subjects, streamName, token, keptPredictionsBucket, trafficBucket, type Subjects, type StreamKind } from './subjects.js';
export { events } from './events.js';
export { natsConnectOptions, describeNatsAuth, NatsAuthError, type NatsAuthSettings } from './auth.js';
export { natsAuthorization, rolePermissions, NATS_ROLES, type NatsRole, type Permissions } from '@infermesh/contracts';
export { replayStream, streamPosition, streamSequenceAt, type Delivery, type ReplayStart, type ReplayHandlers, type StreamReplay, type StreamPosition } from './replay.js';
export { snapshotStore, snapshotBucket, snapshotSubject, SnapshotTooLargeError, type SnapshotStore } from './snapshot.js';
export { expiringBucket, type ExpiringBucket } from './key-value.js';
export { trafficPolicies, trafficKey, TRAFFIC_HISTORY, type TrafficPolicies, type TrafficPolicyWatch } from './traffic-policies.js';
