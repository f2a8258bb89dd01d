export { createRouter, VERSION, type Router, type RouterDeps } from './server.js';
export { routerConfig, type RouterConfig } from './config.js';
export { RoutingTable, type WorkerEntry } from './routing-table.js';
