export { commonEnv, portVar, workersVar, unsetIfEmpty, parseEnv, ConfigError, LOG_LEVELS } from './env.js';
export { configOrExit, drainOnSignals } from './process.js';
export {
  startInternalServer,
  probeHandler,
  httpServerOptions,
  type InternalServer,
  type InternalServerOptions,
  type ProbeOptions,
  type Readiness,
  type HttpTimeouts,
  type MetricsSource,
} from './internal-server.js';
export { runWorkers, type RunWorkersOptions, type RunningService, type WorkerSlot } from './workers.js';
