export { commonEnv, portVar, unsetIfEmpty, parseEnv, ConfigError, LOG_LEVELS } from './env.js';
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
} from './internal-server.js';
