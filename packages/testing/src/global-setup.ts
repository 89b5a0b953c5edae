import { inject } from 'vitest';
import type { TestProject } from 'vitest/node';
import { resolveTestServices } from './services.js';
import { createTemplateDatabase } from './databases.js';

/** What the global setup hands to every test file (read it with `testEnv()`). */
export interface TestEnv {
  postgresAdminUrl: string;
  postgresTemplate: string;
  redisUrl: string;
}

// vitest's provide/inject is typed through a `ProvidedContext` module augmentation, which TypeScript
// does not apply across pnpm's symlinked packages here; these two functions keep the keys in one place.
const provideAll = (project: TestProject, env: TestEnv): void => {
  for (const [key, value] of Object.entries(env)) project.provide(key as never, value as never);
};

/** The services and template database of this test run. */
export function testEnv(): TestEnv {
  const get = inject as unknown as (key: keyof TestEnv) => string;
  return {
    postgresAdminUrl: get('postgresAdminUrl'),
    postgresTemplate: get('postgresTemplate'),
    redisUrl: get('redisUrl'),
  };
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
    provideAll(project, {
      postgresAdminUrl: services.postgresUrl,
      postgresTemplate: template,
      redisUrl: services.redisUrl,
    });
    return async () => {
      const { default: pg } = await import('pg');
      const c = new pg.Client({ connectionString: services.postgresUrl });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS "${template}" WITH (FORCE)`).finally(() => c.end());
      await services.stop();
    };
  };
}
