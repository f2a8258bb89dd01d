export { connectBus, type Bus, type BusOptions, type Received, type Delivery, type DurableConsumer } from './bus.js';
export { subjects, streamName, token, type Subjects, type StreamKind } from './subjects.js';
export { events } from './events.js';
