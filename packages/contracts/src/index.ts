export * from './ingest.js';
export * from './wire.js';
export * from './channels.js';
export * from './envelope.js';
export * from './jobs.js';
export * from './errors.js';
export type { JobsOptions } from './bullmq-options.js';
export * from './provision.js';
export * from './alarm-wire.js';
