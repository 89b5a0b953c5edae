import type { TestProject } from 'vitest/node';
import { resolveTestServices } from './services.js';
import { createTemplateDatabase } from './databases.js';

declare module 'vitest' {
  export interface ProvidedContext {
    postgresAdminUrl: string;
    postgresTemplate: string;
    redisUrl: string;
  }
}

/**
 * Builds a vitest globalSetup: resolves the services once per run and migrates a template database with
 * `prepareTemplate` (each package passes @alarmcast/db's applyMigrations; this package does not depend on
 * db). Tests read the result with `inject(...)`.
 */
export function makeGlobalSetup(prepareTemplate: (url: string) => Promise<void>) {
  return async function setup(project: TestProject): Promise<() => Promise<void>> {
    const services = await resolveTestServices();
    // One template per package run, so packages testing in parallel (turbo) do not drop each other's.
    const template = `ac_tpl_${process.pid}`;
    await createTemplateDatabase(services.postgresUrl, template, prepareTemplate);
    project.provide('postgresAdminUrl', services.postgresUrl);
    project.provide('postgresTemplate', template);
    project.provide('redisUrl', services.redisUrl);
    return async () => {
      const { default: pg } = await import('pg');
      const c = new pg.Client({ connectionString: services.postgresUrl });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS "${template}" WITH (FORCE)`).finally(() => c.end());
      await services.stop();
    };
  };
}
