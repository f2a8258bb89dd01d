export { createPreprocessor, type Preprocessor } from './server.js';
export { preprocessorConfig, type PreprocessorConfig } from './config.js';
export { preprocess } from './preprocessor-service.js';
export { runImagePipeline } from './image-pipeline.js';
export { runTabularPipeline } from './tabular-pipeline.js';
