export { connectBus, type Bus, type BusOptions, type Received } from './bus.js';
export { subjects, streamName, token, type Subjects } from './subjects.js';
export { events } from './events.js';
