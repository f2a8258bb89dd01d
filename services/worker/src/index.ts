export { createWorker, VERSION, type Worker, type WorkerDeps } from './server.js';
export { workerConfig, type WorkerConfig } from './config.js';
export { DynamicBatcher, QueueFullError, type BatcherOptions } from './dynamic-batcher.js';
export { modelConfigSchema, pipelineSpec, type ModelConfig } from './model-config.js';
export { scanRepository, readModelConfig } from './repository.js';
export { Supervisor, type SupervisorOptions } from './supervisor.js';
export { detectGpus, planSlots, parseDeviceList, type WorkerSlot } from './devices.js';
