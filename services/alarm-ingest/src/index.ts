export { startIngest, type IngestServer, type IngestOptions } from './server.js';
export { parseIngestConfig, type IngestConfig } from './config.js';
