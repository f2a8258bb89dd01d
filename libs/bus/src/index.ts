export { connectBus, type Bus, type BusOptions, type Received, type Delivery, type DurableConsumer } from './bus.js';
export { subjects, streamName, token, type Subjects, type StreamKind } from './subjects.js';
export { events } from './events.js';
export { natsConnectOptions, describeNatsAuth, NatsAuthError, type NatsAuthSettings } from './auth.js';
export { natsAuthorization, rolePermissions, NATS_ROLES, type NatsRole, type Permissions } from '@infermesh/contracts';
export { replayStream, streamPosition, streamSequenceAt, type ReplayStart, type ReplayHandlers, type StreamReplay, type StreamPosition } from './replay.js';
export { snapshotStore, snapshotBucket, snapshotSubject, SnapshotTooLargeError, type SnapshotStore } from './snapshot.js';
