/** Evaluating a served model version on a labelled set (infermesh evaluate; infermesh optimize compares versions with it). */
export { evaluateVersion, writeEvaluation, EvaluationError, EVALUATION_FILE, type EvaluateOptions, type EvaluationReport } from './run.js';
export { formatReport, formatSideBySide, formatConfusion } from './report.js';
export { measureWorkerMemory, workerMemoryOf, formatWorkerMemory, meshNats, WORKER_MEMORY_SCOPE, type WorkerMemory, type WorkerRss, type NatsEndpoint } from './worker-memory.js';
export { classificationFigures, type ClassificationFigures, type ConfusionMatrix } from './metrics.js';
export { loadEvaluationSet, defaultEvaluationPath, EvaluationSetError, MAX_EVALUATION_ITEMS, type EvaluationSet, type EvaluationItem } from './dataset.js';
