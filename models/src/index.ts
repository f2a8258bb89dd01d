export * from './text-image.js';
export * from './paths.js';
