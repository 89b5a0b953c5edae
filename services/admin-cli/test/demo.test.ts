import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, testEnv } from '@alarmcast/testing';
import { createPrismaClient, type PrismaClient } from '@alarmcast/db';
import { hashCollectorToken, verifyUserJwt } from '@alarmcast/auth';
import type { DemoResult } from '../src/commands.js';
import { runCli, TEST_JWT_SECRET } from './run-cli.js';

describe('demo', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let prisma: PrismaClient;
  beforeAll(async () => {
    db = await createTestDatabase(testEnv().postgresAdminUrl, testEnv().postgresTemplate);
    prisma = createPrismaClient(db.url);
  });
  afterAll(async () => {
    await prisma?.$disconnect();
    await db?.drop();
  });

  it('creates the world once when run twice, at the same time even, and then reissues only a token', async () => {
    // Both runs at once: one creates, the other either finds the world or loses the race on the unique slug
    // and falls back to it. Sequential runs take the first of those paths.
    const runs = await Promise.all([
      runCli(['demo'], { databaseUrl: db.url }),
      runCli(['demo'], { databaseUrl: db.url }),
    ]);
    expect(runs.map((r) => [r.code, r.stderr])).toEqual([
      [0, ''],
      [0, ''],
    ]);
    const results = runs.map((r) => r.json as unknown as DemoResult);
    const created = results.find((r) => r.created)!;
    const again = results.find((r) => !r.created)!;
    expect(created).toBeDefined();
    expect(again).toMatchObject({ created: false, note: expect.stringMatching(/cannot be shown again/) });

    expect(Object.keys(created.users)).toHaveLength(4);
    expect(Object.keys(created.devices)).toHaveLength(4);
    expect(Object.keys(created.collectorTokens).sort()).toEqual(['demo-collector', 'platform-collector']);
    expect(created.collectorTokens['platform-collector']!.tenantId).toBeNull();
    // same world, fresh JWTs, and a new demo-tenant token in place of those that cannot be shown again
    expect(again.tenants).toEqual(created.tenants);
    expect(again.devices).toEqual(created.devices);
    expect(Object.keys(again.users)).toEqual(Object.keys(created.users));
    expect(Object.keys(again.collectorTokens)).toEqual(['demo-collector']);
    expect(again.collectorTokens['demo-collector']!.tenantId).toBe(created.tenants.demo!.id);
    expect(again.collectorTokens['demo-collector']!.id).not.toBe(
      created.collectorTokens['demo-collector']!.id,
    );

    expect(await prisma.tenant.count()).toBe(2);
    expect(await prisma.user.count()).toBe(4);
    expect(await prisma.cpeDevice.count()).toBe(4);
    const other = created.users['other-operator']!;
    expect(other.tenantId).toBe(created.tenants.other!.id);
    expect(await prisma.userDevice.findMany({ select: { userId: true, deviceId: true } })).toEqual([
      { userId: other.id, deviceId: created.devices['demo-cpe-1']!.id },
    ]);
    const tokens = await prisma.collectorToken.findMany();
    expect(tokens).toHaveLength(3);
    for (const t of [created, again].flatMap((r) => Object.values(r.collectorTokens))) {
      expect(tokens.find((row) => row.id === t.id)?.tokenHash).toBe(hashCollectorToken(t.token));
    }
    for (const u of [created, again].flatMap((r) => Object.values(r.users))) {
      expect(await verifyUserJwt(TEST_JWT_SECRET, u.jwt!)).toEqual({ userId: u.id, exp: expect.any(Number) });
    }
  });
});
