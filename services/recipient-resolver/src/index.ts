export { startResolver, type ResolverProcess, type ResolverOptions } from './worker.js';
export { parseResolverConfig, type ResolverConfig } from './config.js';
