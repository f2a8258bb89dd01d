export { createMonitor, type Monitor, type MonitorDeps } from './server.js';
export { monitorConfig, type MonitorConfig } from './config.js';
export { MonitorState, type MonitorStateOptions, type RecordOutcome, type StreamMark } from './monitor-state.js';
export { ModelMetrics, type ModelMetricsOptions, type VersionStats, type Observation } from './model-metrics.js';
export { KnownModels, UNKNOWN } from './known-models.js';
export { ClientUsage, ANONYMOUS, OTHER, type ClientUsageRow } from './client-usage.js';
