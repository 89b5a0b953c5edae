import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, testEnv } from '@alarmcast/testing';
import { readdirSync } from 'node:fs';
import { MIGRATIONS_DIR, createPrismaClient, type PrismaClient } from '@alarmcast/db';
import { hashCollectorToken, verifyUserJwt } from '@alarmcast/auth';
import { toCliError } from '../src/errors.js';
import { migrate } from '../src/commands.js';
import { parseCliConfig } from '../src/config.js';
import { runCli, TEST_JWT_SECRET } from './run-cli.js';

// Each spawned CLI costs about a second of CPU (tsx, Prisma's query compiler), so the suite spawns one
// process per behaviour worth seeing end to end, runs independent ones in parallel, and checks the rest
// (argument rules, error mapping) in-process.

describe('create commands', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let prisma: PrismaClient;
  /** `line` is split on spaces: no value here contains one */
  const cli = (line: string) => runCli(line.split(' '), { databaseUrl: db.url });
  beforeAll(async () => {
    db = await createTestDatabase(testEnv().postgresAdminUrl, testEnv().postgresTemplate);
    prisma = createPrismaClient(db.url);
  });
  afterAll(async () => {
    await prisma?.$disconnect();
    await db?.drop();
  });

  it('create a tenant, its user and device, a share, and manage a token, a user and a JWT', async () => {
    const tenant = await cli('tenant create --name Acme --slug acme');
    expect(tenant).toMatchObject({ code: 0, stderr: '', json: { name: 'Acme', slug: 'acme' } });
    const tenantId = tenant.json.id as number;

    const [user, platformUser, device, token] = await Promise.all([
      cli(`user create --email ann@acme.example --name Ann --tenant ${tenantId} --role viewer`),
      cli('user create --email ops@platform.example --name Ops --inactive'),
      cli(`device create --tenant ${tenantId} --oui 00d09e --product-class IGD --serial SN1 --name Hall`),
      cli(`token create --name acme-collector --tenant ${tenantId}`),
    ]);
    expect(user.json).toMatchObject({ tenantId, email: 'ann@acme.example', role: 'viewer', active: true });
    expect(platformUser.json).toMatchObject({ tenantId: null, role: 'operator', active: false });
    expect(device.json).toMatchObject({
      tenantId,
      oui: '00D09E',
      productClass: 'IGD',
      serialNumber: 'SN1',
      name: 'Hall',
    });
    const tokenRow = await prisma.collectorToken.findUniqueOrThrow({
      where: { id: token.json.id as number },
    });
    // No --scopes: exactly what every token could do before scopes existed.
    expect(tokenRow).toMatchObject({ tenantId, name: 'acme-collector', revokedAt: null, scopes: ['alarms'] });
    expect(token.json.scopes).toEqual(['alarms']);
    expect(tokenRow.tokenHash).toBe(hashCollectorToken(token.json.token as string));

    const [share, jwt, revoked, deactivated] = await Promise.all([
      cli(`share create --user ${platformUser.json.id} --device ${device.json.id}`),
      cli(`jwt --user ${user.json.id} --ttl 60`),
      cli(`token revoke --id ${token.json.id}`),
      cli(`user deactivate --id ${platformUser.json.id}`),
    ]);
    expect(share.json).toMatchObject({ userId: platformUser.json.id, deviceId: device.json.id });
    expect(await prisma.userDevice.count()).toBe(1);
    expect(jwt.json).toMatchObject({ userId: user.json.id, tenantId, active: true, ttlSeconds: 60 });
    // Every minted JWT has an exp (the edge and the API refuse one without): --ttl seconds from now.
    const claims = await verifyUserJwt(TEST_JWT_SECRET, jwt.json.jwt as string);
    expect(claims).toEqual({ userId: user.json.id, exp: expect.any(Number) });
    expect(Math.abs(claims!.exp - (Math.floor(Date.now() / 1000) + 60))).toBeLessThanOrEqual(5);
    const revokedAt = (
      await prisma.collectorToken.findUniqueOrThrow({ where: { id: token.json.id as number } })
    ).revokedAt;
    expect(revokedAt?.toISOString()).toBe(revoked.json.revokedAt);
    expect(deactivated.json).toEqual({ id: platformUser.json.id, active: false });

    const [scoped, badScope, repeated] = await Promise.all([
      cli(`token create --name informer --tenant ${tenantId} --scopes informs,alarms`),
      cli('token create --name bad --scopes alarms,telemetry'),
      cli('token create --name twice --scopes informs,informs'),
    ]);
    expect(scoped.json.scopes).toEqual(['informs', 'alarms']);
    expect(
      (await prisma.collectorToken.findUniqueOrThrow({ where: { id: scoped.json.id as number } })).scopes,
    ).toEqual(['informs', 'alarms']);
    for (const refused of [badScope, repeated]) {
      expect(refused.code).toBe(2);
      expect(refused.stderr).toContain('invalid_arguments');
      expect(refused.stderr).toContain('scopes');
    }
    // Five rounds of spawned CLIs, seconds each on a loaded machine.
  }, 90_000);

  it('move a user, delete a share, and mint a JWT with the default lifetime', async () => {
    const [from, to] = await Promise.all(
      ['from', 'to'].map((slug) => prisma.tenant.create({ data: { name: slug, slug: `move-${slug}` } })),
    );
    const user = await prisma.user.create({
      data: { tenantId: from!.id, email: 'mover@example.test', name: 'Mover' },
    });
    const device = await prisma.cpeDevice.create({
      data: { tenantId: to!.id, oui: '00D09E', productClass: 'IGD', serialNumber: 'MOVE1' },
    });
    await prisma.userDevice.create({ data: { userId: user.id, deviceId: device.id } });
    const [moved, unshared, defaultJwt] = await Promise.all([
      cli(`user move --id ${user.id} --tenant ${to!.id}`),
      cli(`share delete --user ${user.id} --device ${device.id}`),
      cli(`jwt --user ${user.id}`),
    ]);
    expect(moved.json).toEqual({ id: user.id, tenantId: to!.id, active: true });
    expect(unshared.json).toEqual({ userId: user.id, deviceId: device.id });
    expect(await prisma.userDevice.count({ where: { userId: user.id } })).toBe(0);
    // The documented default lifetime: 12 hours.
    const defaultExp = (await verifyUserJwt(TEST_JWT_SECRET, defaultJwt.json.jwt as string))!.exp;
    expect(Math.abs(defaultExp - (Math.floor(Date.now() / 1000) + 12 * 3600))).toBeLessThanOrEqual(5);
    const again = await cli(`share delete --user ${user.id} --device ${device.id}`);
    expect(again).toMatchObject({ code: 1, error: { code: 'not_found' } });
  }, 90_000);

  it('answers mistakes with one error object on stderr and the exit code of its class', async () => {
    await prisma.tenant.create({ data: { name: 'Taken', slug: 'taken' } });
    const [duplicate, unknownTenant, badFlags] = await Promise.all([
      cli('tenant create --name Again --slug taken'),
      cli('device create --tenant 999999 --oui 00D09E --product-class IGD --serial X'),
      cli('device create --tenant 1 --oui nothex --product-class IGD'),
    ]);
    expect(duplicate).toMatchObject({
      code: 1,
      stdout: '',
      error: { code: 'conflict', message: 'a tenant with this slug already exists' },
    });
    expect(unknownTenant).toMatchObject({
      code: 1,
      stdout: '',
      error: { code: 'not_found', message: 'no tenant with the given id' },
    });
    expect(badFlags).toMatchObject({ code: 2, stdout: '', error: { code: 'invalid_arguments' } });
    expect(badFlags.error!.details).toEqual({
      problems: [expect.stringMatching(/^--oui:/), '--serial is required'],
    });
    for (const run of [duplicate, unknownTenant, badFlags]) {
      // one JSON line: no stack trace, no Prisma call-site dump
      expect(run.stderr.trim().split('\n')).toHaveLength(1);
    }
    expect(await prisma.cpeDevice.count({ where: { serialNumber: 'X' } })).toBe(0);
  });
});

describe('migrate and the database', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const c of cleanups) await c();
  });

  it('tells to migrate an empty database, then migrates it', async () => {
    // template0: a database without our tables
    const empty = await createTestDatabase(testEnv().postgresAdminUrl, 'template0');
    cleanups.push(empty.drop);
    const notMigrated = await runCli('tenant create --name A --slug a'.split(' '), {
      databaseUrl: empty.url,
    });
    expect(notMigrated).toMatchObject({
      code: 1,
      error: { code: 'database_not_migrated', message: expect.stringMatching(/cli migrate/) },
    });
    const migrated = await runCli(['migrate'], { databaseUrl: empty.url });
    // Every migration folder, in name order.
    const all = readdirSync(MIGRATIONS_DIR, { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .map((d) => d.name)
      .sort();
    expect(all[0]).toBe('20261125000000_init');
    expect(migrated).toMatchObject({ code: 0, json: { applied: all } });
  });

  it('reports an unreachable Postgres as database_unavailable, through Prisma and through pg', async () => {
    const config = parseCliConfig({ DATABASE_URL: 'postgresql://postgres@127.0.0.1:1/x' });
    const prisma = createPrismaClient(config.databaseUrl, { connectTimeoutMs: 1000 });
    try {
      const viaPrisma = await prisma.tenant.count().catch((err: unknown) => err);
      expect(toCliError(viaPrisma)).toMatchObject({ code: 'database_unavailable' });
      const viaPg = await migrate(prisma, config).catch((err: unknown) => err);
      expect(toCliError(viaPg)).toMatchObject({ code: 'database_unavailable' });
    } finally {
      await prisma.$disconnect();
    }
  });
});
