export { createPreprocessor, type Preprocessor } from './server.js';
export { preprocessorConfig, type PreprocessorConfig } from './config.js';
export { preprocess } from './preprocessor-service.js';
export { imagesToPixels, placement, padPixel } from './image-pipeline.js';
export { resizeBilinear } from './resize.js';
