export { resolveTestServices, type TestServices } from './services.js';
export { createTemplateDatabase, createTestDatabase, databaseUrl, uniqueRedisPrefix } from './databases.js';
export { makeGlobalSetup, testEnv, type TestEnv } from './global-setup.js';
