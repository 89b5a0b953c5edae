export { commonEnv, portVar, unsetIfEmpty, parseEnv, ConfigError, LOG_LEVELS } from './env.js';
export { configOrExit, drainOnSignals } from './process.js';
