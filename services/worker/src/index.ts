export { createWorker, VERSION, type Worker, type WorkerDeps } from './server.js';
export { workerConfig, type WorkerConfig } from './config.js';
export { modelConfigSchema, imagePipeline, tabularPipeline, imagePipelineMessage, servedInputs, clientInputs, type ModelConfig, type TabularPipelineConfig, type ImagePipelineConfig } from './model-config.js';
export { preparedModel } from './model-registry.js';
export { loadPostprocessor, type OutputPostprocessor, type RunGeometry } from './postprocess/postprocessor.js';
export { paddedFrame, cropFrames, stackPadded, padPixel, resizedSize, variableDims } from './variable-size.js';
export { rowsToTensor } from './tabular-rows.js';
export { scanRepository, readModelConfig } from './repository.js';
export { Supervisor, type SupervisorOptions } from './supervisor.js';
export { detectGpus, planSlots, parseDeviceList, type WorkerSlot } from './devices.js';
export { prependImagePrelude, prependFeaturePrelude, imagePreludeModel, featurePreludeModel, GraphPreludeError, type ImagePrelude, type FeaturePrelude } from './graph-prelude.js';
export {
  loadDriftProfile, parseDriftProfile, checkProfileFitsModel, profileIdOf, binIndex, driftProfileSchema, DriftProfileError,
  IMAGE_FEATURES, IMAGE_FEATURE_NAMES, MAX_PROFILE_FEATURES, MAX_PROFILE_BINS, PROFILE_FILE, type DriftProfile, type LoadedProfile, type ImageFeatureName,
} from './drift-profile.js';
export { buildDriftProfile, featureReference, serializeDriftProfile, ProfileBuildError, DEFAULT_PROFILE_BINS, type FeatureValues, type FeatureSummary, type ProfileInput } from './profile-builder.js';
export { tabularFeatureValues, imageFeatureValues } from './drift-bins.js';
