export * from './text-image.js';
export * from './ocr-pages.js';
export * from './paths.js';
export { ImageValues, TabularValues, ProfileDataError, referenceValuesFor, type ReferenceValues, type ProfileOptions } from './profile-data.js';
export { describeSummaries } from './profiles.js';
export { trainIris, IRIS_FEATURES, type IrisRow } from './iris.js';
export { EVALUATION_LABELS_FILE, EVALUATION_ROWS_FILE } from './evaluation-sets.js';
