import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, testEnv } from '@alarmcast/testing';
import { createPrismaClient, type PrismaClient } from '@alarmcast/db';
import { hashCollectorToken, verifyUserJwt } from '@alarmcast/auth';
import type { ProvisionGraph, ProvisionResult } from '@alarmcast/contracts';
import { provision } from '../src/commands.js';
import { parseCliConfig } from '../src/config.js';
import { runCli, TEST_JWT_SECRET } from './run-cli.js';

const GRAPH = {
  tenants: [
    {
      ref: 'acme',
      name: 'Acme ISP',
      slug: 'acme',
      users: [
        { ref: 'ann', email: 'ann@acme.example', name: 'Ann', role: 'tenant_admin' },
        { ref: 'bob', email: 'bob@acme.example', name: 'Bob', active: false },
      ],
      devices: [{ ref: 'cpe1', oui: '00D09E', productClass: 'IGD', serialNumber: 'ACME1', name: 'Hall' }],
      collectorTokens: [{ ref: 'acme-col', name: 'acme collector' }],
    },
    {
      ref: 'beta',
      name: 'Beta ISP',
      slug: 'beta',
      users: [{ ref: 'cid', email: 'cid@beta.example', name: 'Cid' }],
    },
  ],
  platformUsers: [{ ref: 'root', email: 'root@platform.example', name: 'Root', role: 'platform_admin' }],
  collectorTokens: [{ ref: 'global', name: 'platform collector' }],
  shares: [{ user: 'cid', device: 'cpe1' }],
} satisfies ProvisionGraph;

describe('provision', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let prisma: PrismaClient;
  let dir: string;
  let file: string;
  beforeAll(async () => {
    db = await createTestDatabase(testEnv().postgresAdminUrl, testEnv().postgresTemplate);
    prisma = createPrismaClient(db.url);
    dir = await mkdtemp(join(tmpdir(), 'admin-cli-'));
    file = join(dir, 'graph.json');
    await writeFile(file, JSON.stringify(GRAPH));
  });
  afterAll(async () => {
    await prisma?.$disconnect();
    await db?.drop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('creates the graph from a file, with working tokens and JWTs', async () => {
    const run = await runCli(['provision', '--file', file], { databaseUrl: db.url });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const result = run.json as unknown as ProvisionResult;
    const acme = result.tenants.acme!.id;
    const beta = result.tenants.beta!.id;

    const users = await prisma.user.findMany({ orderBy: { id: 'asc' } });
    expect(users.map((u) => [u.id, u.email, u.tenantId, u.role, u.active])).toEqual([
      [result.users.ann!.id, 'ann@acme.example', acme, 'tenant_admin', true],
      [result.users.bob!.id, 'bob@acme.example', acme, 'operator', false],
      [result.users.cid!.id, 'cid@beta.example', beta, 'operator', true],
      [result.users.root!.id, 'root@platform.example', null, 'platform_admin', true],
    ]);
    expect(
      await prisma.cpeDevice.findUniqueOrThrow({ where: { id: result.devices.cpe1!.id } }),
    ).toMatchObject({
      tenantId: acme,
      oui: '00D09E',
      productClass: 'IGD',
      serialNumber: 'ACME1',
      name: 'Hall',
    });
    expect(await prisma.userDevice.findMany({ select: { userId: true, deviceId: true } })).toEqual([
      { userId: result.users.cid!.id, deviceId: result.devices.cpe1!.id },
    ]);

    for (const [ref, tenantId] of [
      ['acme-col', acme],
      ['global', null],
    ] as const) {
      const printed = result.collectorTokens[ref]!;
      expect(printed.tenantId).toBe(tenantId);
      const stored = await prisma.collectorToken.findUniqueOrThrow({ where: { id: printed.id } });
      expect(stored).toMatchObject({
        tenantId,
        tokenHash: hashCollectorToken(printed.token),
        revokedAt: null,
      });
    }
    for (const user of Object.values(result.users)) {
      expect(await verifyUserJwt(TEST_JWT_SECRET, user.jwt!)).toEqual({
        userId: user.id,
        exp: expect.any(Number),
      });
    }
  });

  it('reads the graph from stdin, and resolves a relative --file where pnpm was invoked', async () => {
    const gamma = {
      tenants: [
        {
          ref: 't',
          name: 'Gamma',
          slug: 'gamma',
          users: [{ ref: 'u', email: 'u@gamma.example', name: 'U' }],
        },
      ],
    };
    const fromStdin = await runCli(['provision', '--file', '-'], {
      databaseUrl: db.url,
      stdin: JSON.stringify(gamma),
    });
    expect(fromStdin.code).toBe(0);
    const user = (fromStdin.json as unknown as ProvisionResult).users.u!;
    expect(await prisma.user.findUniqueOrThrow({ where: { id: user.id } })).toMatchObject({
      email: 'u@gamma.example',
    });
    expect(await verifyUserJwt(TEST_JWT_SECRET, user.jwt!)).toEqual({
      userId: user.id,
      exp: expect.any(Number),
    });

    // In-process: INIT_CWD reaching the config is what config.test.ts checks; this is the use of it.
    await writeFile(
      join(dir, 'delta.json'),
      JSON.stringify({ tenants: [{ ref: 't', name: 'Delta', slug: 'delta' }] }),
    );
    const config = parseCliConfig({ DATABASE_URL: db.url, INIT_CWD: dir }, '/nonexistent');
    const result = await provision(prisma, config, { file: 'delta.json' });
    expect(await prisma.tenant.findUniqueOrThrow({ where: { slug: 'delta' } })).toMatchObject({
      id: result.tenants.t!.id,
    });
  });

  it('writes nothing for an invalid graph, unknown refs, a conflict, or without a JWT key in production', async () => {
    const before = await prisma.tenant.count();
    const badGraph = {
      tenants: [{ ref: 'x', name: 'X', slug: 'x', devices: [{ ref: 'd', oui: 'nope' }] }],
      shares: [{ user: 'ghost', device: 'd' }],
    };
    const unknownRefs = {
      tenants: [
        {
          ref: 't',
          name: 'Eps',
          slug: 'eps',
          devices: [{ ref: 'd', oui: '00D09E', productClass: 'P', serialNumber: 'E1' }],
        },
      ],
      shares: [{ user: 'ghost', device: 'd' }],
    };
    const [invalid, refs, conflict, noKey] = await Promise.all([
      runCli(['provision', '--file', '-'], { databaseUrl: db.url, stdin: JSON.stringify(badGraph) }),
      runCli(['provision', '--file', '-'], { databaseUrl: db.url, stdin: JSON.stringify(unknownRefs) }),
      // acme's slug and emails exist since the first test
      runCli(['provision', '--file', file], { databaseUrl: db.url }),
      runCli(['provision', '--file', '-'], {
        databaseUrl: db.url,
        env: { NODE_ENV: 'production', JWT_SECRET: '' },
        stdin: JSON.stringify({ tenants: [{ ref: 'p', name: 'P', slug: 'prod' }] }),
      }),
    ]);
    expect(invalid).toMatchObject({ code: 2, stdout: '', error: { code: 'invalid_arguments' } });
    expect(invalid.error!.details).toEqual({
      problems: expect.arrayContaining([
        expect.stringMatching(/^tenants\.0\.devices\.0\.oui:/),
        expect.stringMatching(/^tenants\.0\.devices\.0\.productClass:/),
      ]),
    });
    expect(refs).toMatchObject({
      code: 2,
      error: { code: 'invalid_arguments', message: 'invalid graph: shares.0.user: unknown user ref ghost' },
    });
    expect(conflict).toMatchObject({
      code: 1,
      error: { code: 'conflict', message: 'a tenant with this slug already exists' },
    });
    expect(noKey).toMatchObject({
      code: 2,
      error: { code: 'invalid_config', message: expect.stringMatching(/JWT_SECRET/) },
    });
    expect(await prisma.tenant.count()).toBe(before);
  });
});
