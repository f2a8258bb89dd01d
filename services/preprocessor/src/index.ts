export { createPreprocessor, PREPROCESSOR_CALLERS, type Preprocessor } from './server.js';
export { preprocessorConfig, type PreprocessorConfig } from './config.js';
export { preprocess } from './preprocessor-service.js';
export { imagesToPixels, preprocessImages, placement, padPixel, checkPipeline, type PreprocessedImages } from './image-pipeline.js';
export { lumaStatistics, type LumaStatistics } from './image-statistics.js';
export { resizeBilinear } from './resize.js';
