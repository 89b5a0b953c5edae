export { startResolver, type ResolverProcess, type ResolverOptions } from './resolver-process.js';
export { parseResolverConfig, type ResolverConfig } from './config.js';
export { broadcastJob, decideRecipients, type RecipientDecisions } from './broadcast-job.js';
export { PreferenceCache } from './preference-cache.js';
