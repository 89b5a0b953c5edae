import { createServer, connect, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import pg from 'pg';
import { createLogger } from '@alarmcast/observability';
import { createTestDatabase, testEnv } from '@alarmcast/testing';
import { createPgPool } from '@alarmcast/db';
import { ACCESS_CHANNEL, AccessWatcher } from '../src/access-watcher.js';
import { Revocation, type RevocableMember } from '../src/revocation.js';

/**
 * A TCP proxy to Postgres that can go silent without closing anything: what a network partition (or a
 * failover that kept the address) looks like from the edge. No error, no close, no notifications.
 */
class StallingProxy {
  private constructor(
    private readonly server: Server,
    readonly port: number,
    private readonly pairs: { client: Socket; upstream: Socket }[],
  ) {}

  static async start(target: URL): Promise<StallingProxy> {
    const pairs: { client: Socket; upstream: Socket }[] = [];
    const server = createServer((client) => {
      const upstream = connect(Number(target.port || 5432), target.hostname);
      for (const s of [client, upstream]) s.on('error', () => undefined);
      client.pipe(upstream).pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
      pairs.push({ client, upstream });
    });
    const port = await new Promise<number>((resolve) =>
      server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)),
    );
    return new StallingProxy(server, port, pairs);
  }

  /** Every connection open now stops carrying bytes, both ways; later connections work. */
  stallOpenConnections(): void {
    for (const { client, upstream } of this.pairs) {
      client.unpipe(upstream);
      upstream.unpipe(client);
      client.pause();
      upstream.pause();
    }
  }

  async close(): Promise<void> {
    for (const { client, upstream } of this.pairs) {
      client.destroy();
      upstream.destroy();
    }
    await new Promise((r) => this.server.close(r));
  }
}

describe('AccessWatcher', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let proxy: StallingProxy;
  let sql: pg.Client;

  beforeAll(async () => {
    db = await createTestDatabase(testEnv().postgresAdminUrl, testEnv().postgresTemplate);
    proxy = await StallingProxy.start(new URL(db.url));
    sql = new pg.Client({ connectionString: db.url });
    await sql.connect();
  });
  afterAll(async () => {
    await sql.end();
    await proxy.close();
    await db.drop();
  });

  it('notices a LISTEN connection gone silent by its heartbeat, reconnects and asks for a full re-check', async () => {
    const url = new URL(db.url);
    url.hostname = '127.0.0.1';
    url.port = String(proxy.port);
    const changes: number[][] = [];
    let listening = 0;
    const watcher = new AccessWatcher({
      databaseUrl: url.toString(),
      log: createLogger({ service: 'test', level: 'silent' }),
      onChange: (ids) => changes.push(ids),
      onListening: () => (listening += 1),
      heartbeatMs: 300,
      reconnectMs: 50,
    });
    watcher.start();
    try {
      await vi.waitFor(() => expect(listening).toBe(1));
      await sql.query(`SELECT pg_notify($1, '{"user_id":7,"change":"active"}')`, [ACCESS_CHANNEL]);
      await vi.waitFor(() => expect(changes).toEqual([[7]]));

      proxy.stallOpenConnections();
      // Sent while the connection is silent: it never arrives, which is why the reconnect re-checks all.
      await sql.query(`SELECT pg_notify($1, '{"user_id":8,"change":"tenant"}')`, [ACCESS_CHANNEL]);
      await vi.waitFor(() => expect(listening).toBe(2), { timeout: 5000, interval: 20 });
      expect(watcher.listening).toBe(true);
      expect(changes).toEqual([[7]]);

      // And the new connection carries later changes; malformed payloads are dropped.
      await sql.query(
        `SELECT pg_notify($1, 'not json'), pg_notify($1, '{"user_id":9,"change":"share","device_id":3}')`,
        [ACCESS_CHANNEL],
      );
      await vi.waitFor(() => expect(changes).toEqual([[7], [9]]));
    } finally {
      await watcher.close();
    }
    expect(watcher.listening).toBe(false);
  });

  it('retries a re-check whose query hangs on a silent connection, and applies it', async () => {
    const url = new URL(db.url);
    url.hostname = '127.0.0.1';
    url.port = String(proxy.port);
    const pool = createPgPool(url.toString(), { max: 3 });
    const { rows } = await sql.query<{ id: number }>(
      `INSERT INTO users (email, name, active) VALUES ('gone@example.test', 'gone', false) RETURNING id`,
    );
    const userId = rows[0]!.id;
    let revokedAll = 0;
    const member: RevocableMember = {
      socketId: '1.1',
      channelsOf: () => [`private-user.${userId}`],
      revokeChannel: () => undefined,
      revokeAll: () => (revokedAll += 1),
      expire: () => undefined,
    };
    const revocation = new Revocation({
      pool,
      log: createLogger({ service: 'test', level: 'silent' }),
      retryMs: 50,
      queryTimeoutMs: 300,
    });
    try {
      await pool.query('SELECT 1'); // an idle pooled connection, the one the re-check will get first
      proxy.stallOpenConnections();
      revocation.granted(userId, member);
      revocation.accessChanged([userId]);
      await vi.waitFor(() => expect(revokedAll).toBe(1), { timeout: 5000, interval: 20 });
    } finally {
      revocation.close();
      // the stalled connection never answers: do not wait for it
      void pool.end().catch(() => undefined);
    }
  });
});
