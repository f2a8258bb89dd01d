export { createMonitor, type Monitor, type MonitorDeps } from './server.js';
export { monitorConfig, type MonitorConfig } from './config.js';
export { ModelMetrics, type ModelMetricsOptions, type VersionStats, type RecordOutcome } from './model-metrics.js';
