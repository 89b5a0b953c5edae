import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { request } from 'node:http';
import { AlarmcastClient, type AlarmEvent } from '@alarmcast/client';
import { generateCollectorToken, hashCollectorToken, signUserJwt } from '@alarmcast/auth';
import type { ProvisionResult } from '@alarmcast/contracts';
import { createPrismaClient, provisionGraph, type PrismaClient } from '@alarmcast/db';
import { createTestDatabase, testEnv, uniqueRedisPrefix } from '@alarmcast/testing';
import { APP, JWT_SECRET, type Pusher } from '../src/stack.js';
import { freePort, spawnService, stopService, type SpawnedService } from '../src/spawned-stack.js';
import { exitOf, rawWebSocket } from '../src/fault-helpers.js';

/**
 * EDGE_WORKERS / INGEST_WORKERS: an edge and an ingest of two workers each, as real processes (the resolver
 * as one), real SDK clients. Sockets and requests land on both workers, a killed worker is replaced and
 * its clients resume, and SIGTERM to a primary drains every worker. Tests run in order on one stack.
 */
const USERS = ['u0', 'u1', 'u2', 'u3', 'u4', 'u5', 'u6', 'u7'];

interface Ready {
  status: string;
  workers: { worker: number; pid: number; ready: boolean }[];
}

/** The Prometheus samples of `name` per `worker` label, from the primary's /metrics. */
async function perWorker(internalUrl: string, name: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${internalUrl}/metrics`)).text();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const worker = /worker="([^"]+)"/.exec(line)?.[1];
    if (worker) out.set(worker, (out.get(worker) ?? 0) + Number(line.split(' ').at(-1)));
  }
  return out;
}

/** A POST on a connection of its own (no keep-alive), so the primary hands each to the next worker. */
function postOnNewConnection(url: string, token: string, body: unknown): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${url}/v1/alarms`,
      {
        method: 'POST',
        agent: false,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

describe('workers per core (2 edge workers, 2 ingest workers)', () => {
  let prisma: PrismaClient;
  let dropDb: () => Promise<void>;
  let world: ProvisionResult;
  let edge: SpawnedService;
  let ingest: SpawnedService;
  let edgeInternal: string;
  let ingestInternal: string;
  const spawned: SpawnedService[] = [];
  const clients: Awaited<ReturnType<typeof sdkClient>>[] = [];
  let seq = 0;

  beforeAll(async () => {
    const env = testEnv();
    const tdb = await createTestDatabase(env.postgresAdminUrl, env.postgresTemplate);
    dropDb = tdb.drop;
    prisma = createPrismaClient(tdb.url);
    world = await provisionGraph(
      prisma,
      {
        tenants: [
          {
            ref: 'A',
            name: 'A',
            slug: 'a',
            users: USERS.map((r) => ({ ref: r, email: `${r}@a.test`, name: r })),
            devices: [{ ref: 'cpe', oui: '00D09E', productClass: 'PC', serialNumber: 'S1' }],
            collectorTokens: [{ ref: 'c', name: 'c' }],
          },
        ],
      },
      { hashToken: hashCollectorToken, newToken: generateCollectorToken },
    );
    const common = {
      NODE_ENV: 'development',
      DATABASE_URL: tdb.url,
      REDIS_URL: env.redisUrl,
      REDIS_PREFIX: uniqueRedisPrefix(),
      LOG_LEVEL: 'warn',
      PUSHER_APP_ID: APP.id,
      PUSHER_APP_KEY: APP.key,
      PUSHER_APP_SECRET: APP.secret,
      JWT_SECRET,
      OUTBOX_RELAY_INTERVAL_MS: '200',
      OUTBOX_RELAY_GRACE_MS: '500',
    };
    const [edgePort, edgeInternalPort, ingestPort, ingestInternalPort, resolverPort] = await Promise.all(
      Array.from({ length: 5 }, () => freePort()),
    );
    edgeInternal = `http://127.0.0.1:${edgeInternalPort}`;
    ingestInternal = `http://127.0.0.1:${ingestInternalPort}`;
    // Settled one by one, so that afterAll stops whatever started even when another did not.
    const settled = await Promise.allSettled([
      spawnService(
        'ws-edge',
        'services/ws-edge/src/main.ts',
        {
          ...common,
          EDGE_WORKERS: '2',
          EDGE_PORT: String(edgePort),
          EDGE_INTERNAL_PORT: String(edgeInternalPort),
        },
        edgePort!,
      ),
      spawnService(
        'alarm-ingest',
        'services/alarm-ingest/src/main.ts',
        {
          ...common,
          INGEST_WORKERS: '2',
          INGEST_PORT: String(ingestPort),
          INGEST_INTERNAL_PORT: String(ingestInternalPort),
        },
        ingestPort!,
      ),
      spawnService(
        'resolver',
        'services/recipient-resolver/src/main.ts',
        { ...common, RESOLVER_METRICS_PORT: String(resolverPort) },
        resolverPort!,
      ),
    ]);
    for (const r of settled) if (r.status === 'fulfilled') spawned.push(r.value);
    for (const r of settled) if (r.status === 'rejected') throw r.reason;
    [edge, ingest] = spawned as [SpawnedService, SpawnedService];
    // /healthz answers as soon as one worker listens; wait for both.
    for (const url of [edgeInternal, ingestInternal]) {
      await vi.waitFor(async () => expect((await fetch(`${url}/readyz`)).status).toBe(200), {
        timeout: 30_000,
        interval: 100,
      });
    }
  }, 60_000);

  afterAll(async () => {
    for (const c of clients) c.client.close();
    await Promise.all(
      spawned.map(async (s) => {
        if (s.child.exitCode === null && s.child.signalCode === null) await stopService(s, 'SIGKILL');
      }),
    );
    // A SIGKILLed primary leaves its workers to notice the lost IPC channel; they exit on their own.
    await prisma?.$disconnect();
    await dropDb?.();
  });

  const sdkClient = async (ref: string) => {
    const userId = world.users[ref]!.id;
    const client = new AlarmcastClient({
      key: APP.key,
      wsHost: '127.0.0.1',
      wsPort: edge.port,
      authEndpoint: `${edge.url}/broadcasting/auth`,
      token: await signUserJwt(JWT_SECRET, userId),
      userId,
      minBackoffMs: 100,
      maxBackoffMs: 500,
    });
    const events: AlarmEvent[] = [];
    let live = false;
    client.on('alarm', (e) => events.push(e));
    client.on('state', (s) => (live = s === 'live'));
    const pusher = (client as unknown as { pusher: Pusher }).pusher;
    const subscribed = () =>
      (pusher.channel(`private-user.${userId}`) as { subscribed: boolean } | undefined)?.subscribed;
    await vi.waitFor(() => expect(live && subscribed()).toBe(true), { timeout: 10_000, interval: 20 });
    return {
      ref,
      client,
      events,
      subscribed,
      /** the socket id the edge gave this client's current connection */
      get socketId(): string {
        return pusher.connection.socket_id;
      },
    };
  };

  const raise = async (tag: string): Promise<string> => {
    const n = seq++;
    const res = await fetch(`${ingest.url}/v1/alarms`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${world.collectorTokens.c!.token}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify({
        deviceId: world.devices.cpe!.id,
        alarmIdentifier: `${tag}-${n}`,
        eventType: 'Communications Alarm',
        probableCause: 'Loss of signal',
        specificProblem: `${tag} ${n}`,
        perceivedSeverity: 'Major',
      }),
    });
    expect(res.status).toBe(202);
    return ((await res.json()) as { id: string }).id;
  };

  /** Every client has each of `ids` exactly once. */
  const everyoneHas = async (ids: string[]) =>
    vi.waitFor(
      () => {
        for (const c of clients) {
          const got = c.events.filter((e) => e.type === 'created').map((e) => e.alarm.id);
          for (const id of ids)
            expect(
              got.filter((g) => g === id),
              `${c.ref} has ${id} once`,
            ).toHaveLength(1);
        }
      },
      { timeout: 15_000, interval: 50 },
    );

  // Worker i of 2 numbers its sockets i, i + 2, i + 4, ...: the part after the dot tells the worker.
  const workerOf = (socketId: string): number => (Number(socketId.split('.')[1]) % 2 === 1 ? 1 : 2);

  it('each primary reports both workers ready on its internal port', async () => {
    for (const [s, url] of [
      [edge, edgeInternal],
      [ingest, ingestInternal],
    ] as const) {
      const res = await fetch(`${url}/readyz`);
      expect(res.status).toBe(200);
      const body = (await res.json()) as Ready;
      expect(body.status).toBe('ready');
      expect(body.workers.map((w) => [w.worker, w.ready])).toEqual([
        [1, true],
        [2, true],
      ]);
      const pids = body.workers.map((w) => w.pid);
      expect(new Set(pids).size).toBe(2);
      expect(pids).not.toContain(s.child.pid);
      expect(await (await fetch(`${url}/metrics`)).text()).toMatch(/^service_workers_running\{[^}]*\} 2$/m);
    }
  });

  it('spreads sockets over both edge workers, with unique Pusher socket ids, and both deliver', async () => {
    // All at once, as browsers arrive: the primary hands connections out in turn, and one client makes two
    // (its WebSocket, then its channel authorization), so clients connecting one by one would all land
    // their sockets on the same worker.
    clients.push(...(await Promise.all(USERS.map((ref) => sdkClient(ref)))));
    const ids = clients.map((c) => c.socketId);
    for (const id of ids) expect(id).toMatch(/^\d+\.\d+$/);
    expect(new Set(ids).size).toBe(USERS.length);
    // Unique by the counter part alone, not only thanks to the random part: the workers count apart.
    expect(new Set(ids.map((id) => id.split('.')[1])).size).toBe(USERS.length);
    expect(new Set(ids.map(workerOf))).toEqual(new Set([1, 2]));

    const connections = await perWorker(edgeInternal, 'ws_edge_connections');
    expect(connections.get('1')).toBeGreaterThan(0);
    expect(connections.get('2')).toBeGreaterThan(0);
    expect(connections.get('1')! + connections.get('2')!).toBe(USERS.length);
    // Each worker counts exactly the sockets whose ids say they are its own.
    for (const w of ['1', '2'] as const) {
      expect(connections.get(w)).toBe(ids.filter((id) => String(workerOf(id)) === w).length);
    }

    await everyoneHas([await raise('spread')]);
    const delivered = await perWorker(edgeInternal, 'ws_edge_messages_delivered_total');
    expect(delivered.get('1')).toBeGreaterThan(0);
    expect(delivered.get('2')).toBeGreaterThan(0);
  });

  it('spreads requests over both ingest workers', async () => {
    const before = await perWorker(ingestInternal, 'alarms_accepted_total');
    const statuses = [];
    for (let i = 0; i < 6; i++) {
      statuses.push(
        await postOnNewConnection(ingest.url, world.collectorTokens.c!.token, {
          deviceId: world.devices.cpe!.id,
          alarmIdentifier: `rr-${i}`,
          eventType: 'Communications Alarm',
          probableCause: 'Loss of signal',
          specificProblem: `round robin ${i}`,
          perceivedSeverity: 'Minor',
        }),
      );
    }
    expect(statuses).toEqual(Array(6).fill(202));
    const after = await perWorker(ingestInternal, 'alarms_accepted_total');
    const served = ['1', '2'].map((w) => (after.get(w) ?? 0) - (before.get(w) ?? 0));
    expect(served[0]).toBeGreaterThan(0);
    expect(served[1]).toBeGreaterThan(0);
    expect(served[0]! + served[1]!).toBe(6);
  });

  it('replaces an edge worker that dies; its clients reconnect to the node and resume what they missed', async () => {
    const ready = (await (await fetch(`${edgeInternal}/readyz`)).json()) as Ready;
    const victim = ready.workers.find((w) => w.worker === 1)!;
    const onVictim = clients.filter((c) => workerOf(c.socketId) === 1);
    expect(onVictim.length).toBeGreaterThan(0);
    const oldIds = new Map(onVictim.map((c) => [c.ref, c.socketId]));

    // /readyz and /metrics asked while the worker dies: the primary's IPC to a dead worker must not crash it.
    const asking = Array.from({ length: 20 }, (_, i) =>
      new Promise((r) => setTimeout(r, i * 5)).then(() =>
        fetch(`${edgeInternal}/${i % 2 ? 'readyz' : 'metrics'}`).then((r) => r.status),
      ),
    );
    process.kill(victim.pid, 'SIGKILL');
    for (const status of await Promise.all(asking)) expect([200, 503]).toContain(status);
    // Raised while the worker is dead and its clients are reconnecting: they get these by resume.
    const during = [await raise('during'), await raise('during')];
    await vi.waitFor(
      async () => {
        const body = (await (await fetch(`${edgeInternal}/readyz`)).json()) as Ready;
        const slot = body.workers.find((w) => w.worker === 1)!;
        expect(slot.pid).not.toBe(victim.pid);
        expect(slot.ready).toBe(true);
      },
      { timeout: 30_000, interval: 200 },
    );
    expect(
      (await fetch(`${edgeInternal}/metrics`).then((r) => r.text())).match(
        /^service_worker_replacements_total\{[^}]*\} (\d+)$/m,
      )?.[1],
    ).toBe('1');
    await vi.waitFor(() => expect(clients.every((c) => c.subscribed())).toBe(true), {
      timeout: 15_000,
      interval: 50,
    });
    for (const c of onVictim) expect(c.socketId).not.toBe(oldIds.get(c.ref));
    await everyoneHas([...during, await raise('after')]);
  });

  it('SIGTERM to a primary drains every worker: sockets closed with 4200, exit 0', async () => {
    for (const c of clients.splice(0)) c.client.close();
    const raw = await Promise.all(
      Array.from({ length: 4 }, async () => {
        let socketId = '';
        const ws = rawWebSocket(edge.port, `/app/${APP.key}?protocol=7`, (text) => {
          const frame = JSON.parse(text) as { event: string; data: string };
          if (frame.event === 'pusher:connection_established')
            socketId = (JSON.parse(frame.data) as { socket_id: string }).socket_id;
        });
        await ws.opened;
        await vi.waitFor(() => expect(socketId).not.toBe(''), { timeout: 5000, interval: 20 });
        return { ...ws, socketId };
      }),
    );
    expect(new Set(raw.map((r) => workerOf(r.socketId)))).toEqual(new Set([1, 2]));

    const edgeExit = exitOf(edge);
    edge.child.kill('SIGTERM');
    expect(await Promise.all(raw.map((r) => r.closed))).toEqual([4200, 4200, 4200, 4200]);
    expect(await edgeExit).toBe(0);

    const ingestExit = exitOf(ingest);
    ingest.child.kill('SIGTERM');
    expect(await ingestExit).toBe(0);
  });
});
