import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import pg from 'pg';
import { generateCollectorToken, hashCollectorToken } from '@alarmcast/auth';
import { tenantChannel, type ProvisionResult } from '@alarmcast/contracts';
import { createPrismaClient, provisionGraph, type PrismaClient } from '@alarmcast/db';
import { createTestDatabase, testEnv, uniqueRedisPrefix } from '@alarmcast/testing';
import { JWT_SECRET, connectUser, startStack, type Stack, type UserClient } from '../src/stack.js';

/**
 * Live revocation through the whole pipeline: alarms raised on the ingest, resolved and delivered to real
 * pusher-js clients on two edges, while the real admin CLI (a separate process, as an operator runs it) or
 * plain SQL (the platform's own application) takes access away. The moment of the change is when this
 * test's own LISTEN session hears the trigger's NOTIFY, i.e. the commit; the time to the last delivery of
 * what the user may no longer read is measured from there.
 */

const CLI_DIR = fileURLToPath(new URL('../../../services/admin-cli/', import.meta.url));
const ALARM = 'App\\Events\\AlarmCreated';

const u = (ref: string) => ({ ref, email: `${ref}@example.test`, name: ref });
const graph = {
  tenants: [
    {
      ref: 'A',
      name: 'Tenant A',
      slug: 'rev-a',
      users: [u('a1'), u('a2'), u('a3')],
      devices: [{ ref: 'da1', oui: '00D09E', productClass: 'HG', serialNumber: 'rev-da1' }],
      collectorTokens: [{ ref: 'col-a', name: 'collector A' }],
    },
    { ref: 'B', name: 'Tenant B', slug: 'rev-b', users: [u('b1'), u('b2')] },
    { ref: 'C', name: 'Tenant C', slug: 'rev-c' },
  ],
  shares: [
    { user: 'b1', device: 'da1' },
    { user: 'b2', device: 'da1' },
  ],
};

function runCli(args: string[], databaseUrl: string): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--conditions=source', '--import', 'tsx', 'src/main.ts', ...args],
      {
        cwd: CLI_DIR,
        env: { PATH: process.env.PATH ?? '', DATABASE_URL: databaseUrl, JWT_SECRET },
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

describe('revocation through the pipeline, on two edges', () => {
  let prisma: PrismaClient;
  let stack: Stack;
  let world: ProvisionResult;
  let databaseUrl: string;
  let dropDb: () => Promise<void>;
  let listener: pg.Client;
  let sql: pg.Client;
  /** when this test heard each user's NOTIFY, by user id */
  const heard = new Map<number, number>();
  const measured: string[] = [];
  const clients: UserClient[] = [];

  beforeAll(async () => {
    const db = await createTestDatabase(testEnv().postgresAdminUrl, testEnv().postgresTemplate);
    databaseUrl = db.url;
    dropDb = db.drop;
    prisma = createPrismaClient(db.url);
    world = await provisionGraph(prisma, graph, {
      hashToken: hashCollectorToken,
      newToken: generateCollectorToken,
    });
    stack = await startStack({
      databaseUrl,
      redisUrl: testEnv().redisUrl,
      redisPrefix: uniqueRedisPrefix(),
      edges: 2,
    });
    listener = new pg.Client({ connectionString: databaseUrl });
    await listener.connect();
    listener.on('notification', (msg) => {
      const { user_id: id } = JSON.parse(msg.payload ?? '{}') as { user_id: number };
      if (!heard.has(id)) heard.set(id, performance.now());
    });
    await listener.query('LISTEN alarmcast_access');
    sql = new pg.Client({ connectionString: databaseUrl });
    await sql.connect();
    await vi.waitFor(() => expect(stack.edges.every((e) => e.listeningForAccessChanges)).toBe(true));
  });
  afterAll(async () => {
    console.log(`revocation timings through the pipeline:\n  ${measured.join('\n  ')}`);
    for (const c of clients) c.disconnect();
    await stack.close();
    await listener.end();
    await sql.end();
    await prisma.$disconnect();
    await dropDb();
  });

  const id = (ref: string) => world.users[ref]!.id;

  let members: UserClient[] | undefined;
  /** a3, a tenant A user on both edges who keeps every alarm: proof the alarms keep flowing */
  async function tenantMembers(): Promise<UserClient[]> {
    if (!members) {
      members = await Promise.all(stack.edges.map((edge) => connectUser(edge, id('a3'))));
      clients.push(...members);
    }
    return members;
  }

  /** The user on both edges: their own channel through connectUser, plus their tenant's channel. */
  async function onBothEdges(ref: string, tenant?: string) {
    const tabs = await Promise.all(stack.edges.map((edge) => connectUser(edge, id(ref))));
    clients.push(...tabs);
    const drops: number[][] = tabs.map(() => []);
    const revoked: (number | null)[] = tabs.map(() => null);
    await Promise.all(
      tabs.map(async (tab, i) => {
        tab.pusher.connection.bind('state_change', (s: { previous: string }) => {
          if (s.previous === 'connected') drops[i]!.push(performance.now());
        });
        if (!tenant) return;
        const channel = tab.pusher.subscribe(tenantChannel(world.tenants[tenant]!.id));
        channel.bind('pusher:subscription_error', () => (revoked[i] = performance.now()));
        await vi.waitFor(() => expect(channel.subscribed).toBe(true));
      }),
    );
    return { tabs, drops, revoked };
  }

  /** Raises a new alarm on da1 every 40 ms until stopped. */
  function alarmsOnDa1(): { stop: () => Promise<void> } {
    let running = true;
    let n = 0;
    const loop = (async () => {
      while (running) {
        n += 1;
        const res = await fetch(`${stack.ingest.url}/v1/alarms`, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${world.collectorTokens['col-a']!.token}`,
            'content-type': 'application/json',
          },
          body: JSON.stringify({
            deviceId: world.devices.da1!.id,
            alarmIdentifier: `rev-${Date.now()}-${n}`,
            eventType: 'Communications Alarm',
            probableCause: 'Loss of signal',
            specificProblem: 'revocation traffic',
            perceivedSeverity: 'Major',
          }),
        });
        expect(res.status).toBe(202);
        await new Promise((r) => setTimeout(r, 40));
      }
    })();
    return {
      stop: async () => {
        running = false;
        await loop;
      },
    };
  }

  const alarmTimes = (tabs: UserClient[]) =>
    tabs.flatMap((t) => t.received.filter((e) => e.event === ALARM).map((e) => e.at));

  /** Waits until `tabs` got alarms after `since`: the pipeline is flowing to them. */
  async function receiving(tabs: UserClient[], since: number): Promise<void> {
    await vi.waitFor(
      () => {
        for (const t of tabs) expect(t.received.some((e) => e.event === ALARM && e.at > since)).toBe(true);
      },
      { timeout: 10_000, interval: 20 },
    );
  }

  it.each([
    {
      how: 'the CLI',
      remove: (user: number, device: number) =>
        runCli(['share', 'delete', '--user', `${user}`, '--device', `${device}`], databaseUrl),
    },
    {
      how: 'plain SQL',
      remove: (user: number, device: number) =>
        sql.query('DELETE FROM user_devices WHERE user_id = $1 AND device_id = $2', [user, device]),
    },
  ])(
    'a share removed by $how: that device’s alarms stop for its user on both edges, the tenant’s users keep them',
    async ({ how, remove }) => {
      const ref = how === 'the CLI' ? 'b1' : 'b2';
      const { tabs } = await onBothEdges(ref);
      const members = await tenantMembers();
      const load = alarmsOnDa1();
      await receiving([...tabs, ...members], 0);
      const result = await remove(id(ref), world.devices.da1!.id);
      if ('code' in result) expect(result).toMatchObject({ code: 0 });
      await vi.waitFor(() => expect(heard.has(id(ref))).toBe(true));
      const changedAt = heard.get(id(ref))!;
      // A full second of alarms after the change: the members get them, the former share holder does not.
      await receiving(members, changedAt + 1000);
      await load.stop();
      const lastDelivery = Math.max(...alarmTimes(tabs));
      expect(lastDelivery - changedAt).toBeLessThan(1000);
      expect(tabs.every((t) => t.pusher.connection.state === 'connected')).toBe(true);
      measured.push(
        `share removed by ${how}: last alarm of the device ${(lastDelivery - changedAt).toFixed(1)} ms after the commit`,
      );
    },
  );

  it('a user deactivated by the CLI is closed with 4009 on both edges and gets no alarm after', async () => {
    const { tabs, drops } = await onBothEdges('a2', 'A');
    const load = alarmsOnDa1();
    await receiving(tabs, 0);
    const result = await runCli(['user', 'deactivate', '--id', `${id('a2')}`], databaseUrl);
    expect(result).toMatchObject({ code: 0 });
    await vi.waitFor(() => expect(drops.map((d) => d.length)).toEqual([1, 1]), {
      timeout: 5000,
      interval: 5,
    });
    const changedAt = heard.get(id('a2'))!;
    await receiving(await tenantMembers(), changedAt + 500);
    await load.stop();
    const closedAt = Math.max(...drops.map((d) => d[0]!));
    const lastDelivery = Math.max(...alarmTimes(tabs));
    expect(closedAt - changedAt).toBeLessThan(1000);
    expect(lastDelivery).toBeLessThan(closedAt);
    expect(tabs.every((t) => t.pusher.connection.state === 'disconnected')).toBe(true);
    measured.push(
      `deactivation by the CLI: closed on both edges ${(closedAt - changedAt).toFixed(1)} ms after the commit; ` +
        `last alarm ${(lastDelivery - changedAt).toFixed(1)} ms after it`,
    );
  });

  it('a user moved by the CLI loses the old tenant’s channel and alarms on both edges, and keeps their own channel', async () => {
    const { tabs, revoked, drops } = await onBothEdges('a1', 'A');
    const load = alarmsOnDa1();
    await receiving(tabs, 0);
    const result = await runCli(
      ['user', 'move', '--id', `${id('a1')}`, '--tenant', `${world.tenants.C!.id}`],
      databaseUrl,
    );
    expect(result).toMatchObject({ code: 0 });
    await vi.waitFor(() => expect(revoked.every((r) => r !== null)).toBe(true), {
      timeout: 5000,
      interval: 5,
    });
    const changedAt = heard.get(id('a1'))!;
    await receiving(await tenantMembers(), changedAt + 1000);
    await load.stop();
    const revokedAt = Math.max(...revoked.map((r) => r!));
    const lastDelivery = Math.max(...alarmTimes(tabs));
    expect(revokedAt - changedAt).toBeLessThan(1000);
    expect(lastDelivery - changedAt).toBeLessThan(1000);
    expect(drops).toEqual([[], []]);
    measured.push(
      `tenant move by the CLI: tenant channel ended on both edges ${(revokedAt - changedAt).toFixed(1)} ms after the commit; ` +
        `last alarm of the old tenant ${(lastDelivery - changedAt).toFixed(1)} ms after it`,
    );
  });
});
