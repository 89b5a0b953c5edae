import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { AlarmcastClient } from '@alarmcast/client';
import { generateCollectorToken, hashCollectorToken, signUserJwt } from '@alarmcast/auth';
import { AdminStatusResponse, type ProvisionResult } from '@alarmcast/contracts';
import { createPrismaClient, provisionGraph, type PrismaClient } from '@alarmcast/db';
import { createTestDatabase, testEnv, uniqueRedisPrefix } from '@alarmcast/testing';
import { launchChromium } from '../src/chromium.js';
import { APP, JWT_SECRET, connectUser, startStack, type Stack, type UserClient } from '../src/stack.js';

const SCREENSHOT = fileURLToPath(new URL('../../../docs/console-cluster.png', import.meta.url));
const u = (ref: string, role?: string) => ({ ref, email: `${ref}@example.test`, name: ref, role });

/**
 * The console's cluster page (platform admins only) in Chromium against two real edges, a resolver and the
 * ingest: the edges with their live connection counts, the queue and the outbox, and the edges' recent resume
 * failures and revocations; and GET /v1/admin/status itself, which only a platform admin may read.
 */
describe('cluster page in Chromium (platform admins)', () => {
  let prisma: PrismaClient;
  let stack: Stack;
  let world: ProvisionResult;
  let browser: Browser;
  let dropDb: () => Promise<void>;
  const clients: UserClient[] = [];
  let sdk: AlarmcastClient | undefined;

  beforeAll(async () => {
    const env = testEnv();
    const db = await createTestDatabase(env.postgresAdminUrl, env.postgresTemplate);
    dropDb = db.drop;
    prisma = createPrismaClient(db.url);
    world = await provisionGraph(
      prisma,
      {
        tenants: [
          {
            ref: 'A',
            name: 'Acme',
            slug: 'acme',
            users: [u('op1'), u('op2'), u('op3'), u('leaver')],
            devices: [{ ref: 'cpe', oui: '00D09E', productClass: 'HG8245', serialNumber: 'C1' }],
            collectorTokens: [{ ref: 'c', name: 'collector' }],
          },
        ],
        platformUsers: [u('admin', 'platform_admin')],
      },
      { hashToken: hashCollectorToken, newToken: generateCollectorToken },
    );
    stack = await startStack({
      databaseUrl: db.url,
      redisUrl: env.redisUrl,
      redisPrefix: uniqueRedisPrefix(),
      edges: 2,
    });
    browser = await launchChromium();
  });
  afterAll(async () => {
    sdk?.close();
    for (const c of clients) c.disconnect();
    await browser?.close();
    await stack?.close();
    await prisma?.$disconnect();
    await dropDb?.();
  });

  const status = async (user: string) => {
    const res = await fetch(`${stack.ingest.url}/v1/admin/status`, {
      headers: { authorization: `Bearer ${await signUserJwt(JWT_SECRET, world.users[user]!.id)}` },
    });
    return { status: res.status, body: (await res.json()) as unknown };
  };

  async function openAs(user: string): Promise<Page> {
    const page = await (await browser.newContext({ viewport: { width: 1100, height: 700 } })).newPage();
    const token = await signUserJwt(JWT_SECRET, world.users[user]!.id);
    await page.addInitScript((t) => localStorage.setItem('alarmcast.token', t), token);
    const answer = await page.goto(`${stack.ingest.url}/console/cluster.html`);
    expect(answer?.status()).toBe(200);
    return page;
  }

  it('is refused to anyone but a platform admin', async () => {
    expect(await status('op1')).toMatchObject({ status: 403, body: { error: { code: 'forbidden' } } });
    const anonymous = await fetch(`${stack.ingest.url}/v1/admin/status`);
    expect(anonymous.status).toBe(401);
    expect(((await anonymous.json()) as { error: { code: string } }).error.code).toBe('unauthenticated');
    const page = await openAs('op1');
    await page.waitForSelector('#error:text("platform admins only")');
    expect(await page.locator('#status').isHidden()).toBe(true);
  });

  it('shows each edge with its connections, the queue, the outbox and recent resume failures and revocations', async () => {
    // Three users on edge 0 (one of them leaves), one on edge 1.
    const [edge0, edge1] = stack.edges as [Stack['edges'][0], Stack['edges'][0]];
    clients.push(await connectUser(edge0, world.users.op1!.id));
    clients.push(await connectUser(edge0, world.users.op2!.id));
    clients.push(await connectUser(edge0, world.users.leaver!.id));
    clients.push(await connectUser(edge1, world.users.op3!.id));

    const page = await openAs('admin');
    await page.waitForSelector('#edges tbody tr:nth-child(2)');
    const rows = async () =>
      page.locator('#edges tbody tr').evaluateAll((trs) =>
        trs.map((tr) =>
          Array.from(tr.querySelectorAll('td'))
            .slice(1, 3)
            .map((td) => td.textContent),
        ),
      );
    await vi.waitFor(
      async () =>
        expect((await rows()).sort()).toEqual([
          ['1', 'user 1'],
          ['3', 'user 3'],
        ]),
      {
        timeout: 10_000,
      },
    );
    expect(await page.textContent('#edge-count')).toBe('2');
    expect(await page.textContent('#connection-total')).toBe('4 connections');
    expect(await page.textContent('#queue-waiting')).toBe('0');
    expect(await page.textContent('#outbox-pending')).toBe('0');

    // A revocation (the leaver is deactivated: their socket is closed with 4009) and a resume that fails
    // (an SDK client resuming from a position that user's log never held).
    await prisma.user.update({ where: { id: world.users.leaver!.id }, data: { active: false } });
    const userId = world.users.op3!.id;
    sdk = new AlarmcastClient({
      key: APP.key,
      wsHost: '127.0.0.1',
      wsPort: edge1.port,
      authEndpoint: `${edge1.url}/broadcasting/auth`,
      token: await signUserJwt(JWT_SECRET, userId),
      userId,
      store: { get: () => '1-1', set: () => undefined },
    });
    await page.waitForSelector('#recent tr[data-kind="revocation"]', { timeout: 10_000 });
    await page.waitForSelector('#recent tr[data-kind="resume_failed"]', { timeout: 10_000 });
    const recent = await page.locator('#recent tbody tr').evaluateAll((trs) =>
      trs.map((tr) =>
        Array.from(tr.querySelectorAll('td'))
          .slice(1, 4)
          .map((td) => td.textContent),
      ),
    );
    expect(recent).toContainEqual(['revocation', 'connection', String(world.users.leaver!.id)]);
    expect(recent).toContainEqual(['resume failed', 'log_expired', String(userId)]);
    // The leaver's socket is gone from edge 0's count; the SDK's joins edge 1's.
    await vi.waitFor(
      async () =>
        expect((await rows()).sort()).toEqual([
          ['2', 'user 2'],
          ['2', 'user 2'],
        ]),
      {
        timeout: 10_000,
      },
    );
    await page.screenshot({ path: SCREENSHOT });

    // The page shows what the API says, and the API's answer has the documented shape.
    const answer = await status('admin');
    expect(answer.status).toBe(200);
    const parsed = AdminStatusResponse.parse(answer.body);
    expect(parsed.edges.map((e) => e.connections).sort()).toEqual([2, 2]);
    expect(parsed.recent.map((r) => r.kind).sort()).toEqual(['resume_failed', 'revocation']);
  });

  it('drops an edge that stopped from the list', async () => {
    const page = await openAs('admin');
    await page.waitForSelector('#edges tbody tr:nth-child(2)');
    await stack.edges[1]!.close();
    await vi.waitFor(async () => expect(await page.locator('#edges tbody tr').count()).toBe(1), {
      timeout: 10_000,
    });
  });
});
