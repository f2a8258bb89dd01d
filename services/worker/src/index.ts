export { createWorker, VERSION, type Worker, type WorkerDeps } from './server.js';
export { workerConfig, type WorkerConfig } from './config.js';
export { modelConfigSchema, imagePipeline, tabularPipeline, imagePipelineMessage, servedInputs, clientInputs, type ModelConfig } from './model-config.js';
export { preparedModel } from './model-registry.js';
export { rowsToTensor } from './tabular-rows.js';
export { scanRepository, readModelConfig } from './repository.js';
export { Supervisor, type SupervisorOptions } from './supervisor.js';
export { detectGpus, planSlots, parseDeviceList, type WorkerSlot } from './devices.js';
export { prependImagePrelude, prependFeaturePrelude, imagePreludeModel, featurePreludeModel, GraphPreludeError, type ImagePrelude, type FeaturePrelude } from './graph-prelude.js';
