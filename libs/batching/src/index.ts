export * from './dynamic-batcher.js';
export * from './pack.js';
