import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, testEnv } from '@alarmcast/testing';
import { createPrismaClient, type PrismaClient } from '@alarmcast/db';
import { parseCommandLine } from '../src/args.js';
import { runCli } from './run-cli.js';

describe('preferences get/set (spawned CLI, real Postgres)', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let prisma: PrismaClient;
  const cli = (line: string, stdin?: string) => runCli(line.split(' '), { databaseUrl: db.url, stdin });
  beforeAll(async () => {
    db = await createTestDatabase(testEnv().postgresAdminUrl, testEnv().postgresTemplate);
    prisma = createPrismaClient(db.url);
  });
  afterAll(async () => {
    await prisma?.$disconnect();
    await db?.drop();
  });

  it('sets and gets a tenant and a user document as JSON, versioned, refusing locked settings', async () => {
    const tenant = await prisma.tenant.create({ data: { name: 'P', slug: 'prefs' } });
    const user = await prisma.user.create({ data: { tenantId: tenant.id, email: 'p@x.test', name: 'P' } });
    const tenantDoc = { defaults: { minSeverity: 'Major' }, locks: ['minSeverity'], criticalBypass: false };
    const [setTenant, empty] = await Promise.all([
      cli(`preferences set --tenant ${tenant.id} --file - --if-version 0`, JSON.stringify(tenantDoc)),
      cli(`preferences get --user ${user.id}`),
    ]);
    expect(setTenant).toMatchObject({
      code: 0,
      json: { tenantId: tenant.id, version: 1, preferences: tenantDoc },
    });
    expect(empty).toMatchObject({ code: 0, json: { userId: user.id, version: 0, preferences: {} } });

    const mine = { mute: { eventTypes: ['Environmental Alarm'] } };
    const [setUser, locked, stale, invalid] = await Promise.all([
      cli(`preferences set --user ${user.id} --file -`, JSON.stringify(mine)),
      cli(`preferences set --user ${user.id} --file -`, JSON.stringify({ minSeverity: 'Critical' })),
      cli(`preferences set --tenant ${tenant.id} --file - --if-version 0`, '{}'),
      cli(
        `preferences set --user ${user.id} --file -`,
        '{"quietHours":{"timeZone":"Nowhere/Land","windows":[]}}',
      ),
    ]);
    expect(setUser).toMatchObject({ code: 0, json: { userId: user.id, version: 1, preferences: mine } });
    expect(locked).toMatchObject({
      code: 2,
      error: { code: 'invalid_arguments', details: { locked: ['minSeverity'] } },
    });
    expect(stale).toMatchObject({ code: 1, error: { code: 'conflict', details: { version: 1 } } });
    expect(invalid).toMatchObject({ code: 2, error: { code: 'invalid_arguments' } });
    expect(JSON.stringify(invalid.error!.details)).toContain('quietHours.timeZone');

    const [gotUser, gotTenant, missing] = await Promise.all([
      cli(`preferences get --user ${user.id}`),
      cli(`preferences get --tenant ${tenant.id}`),
      cli('preferences get --tenant 999999'),
    ]);
    expect(gotUser.json).toEqual({ userId: user.id, version: 1, preferences: mine });
    expect(gotTenant.json).toEqual({ tenantId: tenant.id, version: 1, preferences: tenantDoc });
    expect(missing).toMatchObject({ code: 1, error: { code: 'not_found' } });
  }, 90_000);

  it('wants exactly one of --user and --tenant', () => {
    expect(() => parseCommandLine(['preferences', 'get'])).toThrow(/exactly one of --user and --tenant/);
    expect(() => parseCommandLine(['preferences', 'get', '--user', '1', '--tenant', '2'])).toThrow(
      /exactly one/,
    );
    expect(parseCommandLine(['preferences', 'set', '--tenant', '2', '--file', 'x.json'])).toEqual({
      kind: 'run',
      name: 'preferences set',
      args: { userId: null, tenantId: 2, file: 'x.json', expected: '*' },
    });
  });
});
