export { startResolver, type ResolverProcess, type ResolverOptions } from './resolver-process.js';
export { parseResolverConfig, type ResolverConfig } from './config.js';
