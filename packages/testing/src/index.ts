export { resolveTestServices, type TestServices } from './services.js';
export { createTemplateDatabase, createTestDatabase, databaseUrl, uniqueRedisPrefix } from './databases.js';
export { makeGlobalSetup } from './global-setup.js';
