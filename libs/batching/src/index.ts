export * from './dynamic-batcher.js';
