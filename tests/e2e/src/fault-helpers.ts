import { connect } from 'node:net';
import { randomBytes } from 'node:crypto';
import { APP, JWT_SECRET } from './stack.js';
import { freePort, spawnService, stopService, type SpawnedService } from './spawned-stack.js';

// A private redis-server a test may kill and restart: packages/testing (private-redis.ts).
export { startPrivateRedis, type PrivateRedis } from '@alarmcast/testing';

export interface ServiceEnv {
  databaseUrl: string;
  redisUrl: string;
  /** Redis Cluster seed nodes (`REDIS_CLUSTER_NODES`); when set the services ignore `redisUrl` */
  redisClusterNodes?: string;
  redisPrefix: string;
  /** more environment for every service */
  extra?: Record<string, string>;
}

function commonEnv(o: ServiceEnv): Record<string, string> {
  return {
    NODE_ENV: 'development',
    DATABASE_URL: o.databaseUrl,
    REDIS_URL: o.redisUrl,
    ...(o.redisClusterNodes ? { REDIS_CLUSTER_NODES: o.redisClusterNodes } : {}),
    REDIS_PREFIX: o.redisPrefix,
    LOG_LEVEL: 'warn',
    PUSHER_APP_ID: APP.id,
    PUSHER_APP_KEY: APP.key,
    PUSHER_APP_SECRET: APP.secret,
    JWT_SECRET,
    ...o.extra,
  };
}

/** ws-edge as its own process; `port` to bring one back on the address of a dead one. */
export async function spawnEdgeProcess(o: ServiceEnv, name: string, port?: number): Promise<SpawnedService> {
  const p = port ?? (await freePort());
  return spawnService(
    name,
    'services/ws-edge/src/main.ts',
    { ...commonEnv(o), EDGE_PORT: String(p), EDGE_INTERNAL_PORT: '0' },
    p,
  );
}

export async function spawnResolverProcess(o: ServiceEnv, name: string): Promise<SpawnedService> {
  const p = await freePort();
  return spawnService(
    name,
    'services/recipient-resolver/src/main.ts',
    { ...commonEnv(o), RESOLVER_METRICS_PORT: String(p) },
    p,
  );
}

/** alarm-ingest with a quick outbox relay (200 ms rounds, 500 ms grace), as the in-process stack uses. */
export async function spawnIngestProcess(o: ServiceEnv, name = 'alarm-ingest'): Promise<SpawnedService> {
  const p = await freePort();
  return spawnService(
    name,
    'services/alarm-ingest/src/main.ts',
    {
      ...commonEnv(o),
      INGEST_PORT: String(p),
      INGEST_INTERNAL_PORT: '0',
      OUTBOX_RELAY_INTERVAL_MS: '200',
      OUTBOX_RELAY_GRACE_MS: '500',
    },
    p,
  );
}

/** Resolves with the process' exit code (null when killed by a signal). */
export function exitOf(s: SpawnedService): Promise<number | null> {
  if (s.child.exitCode !== null || s.child.signalCode !== null) return Promise.resolve(s.child.exitCode);
  return new Promise((resolve) => s.child.once('exit', (code) => resolve(code)));
}

export { stopService };

/**
 * A bare WebSocket client (no library): opens `ws://127.0.0.1:{port}{path}`, calls `onText` for every text
 * frame, and resolves `closed` with the close code the server sent (or null when the TCP connection ended
 * without a close frame).
 */
export function rawWebSocket(
  port: number,
  path: string,
  onText: (text: string) => void = () => undefined,
): { opened: Promise<void>; closed: Promise<number | null>; destroy: () => void } {
  const s = connect(port, '127.0.0.1');
  let buf = Buffer.alloc(0);
  let upgraded = false;
  let code: number | null = null;
  let resolveOpened!: () => void;
  let rejectOpened!: (e: Error) => void;
  const opened = new Promise<void>((res, rej) => ((resolveOpened = res), (rejectOpened = rej)));
  const closed = new Promise<number | null>((resolve) => s.on('close', () => resolve(code)));
  s.on('error', (err) => rejectOpened(err));
  s.on('connect', () => {
    s.write(
      `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
  });
  s.on('data', (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    if (!upgraded) {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buf.subarray(0, end).toString();
      if (!head.startsWith('HTTP/1.1 101')) {
        rejectOpened(new Error(`no upgrade: ${head.split('\r\n')[0]}`));
        s.destroy();
        return;
      }
      upgraded = true;
      buf = buf.subarray(end + 4);
      resolveOpened();
    }
    // Server frames are unmasked; we only read FIN frames (the edge sends no fragments).
    for (;;) {
      if (buf.length < 2) return;
      const opcode = buf[0]! & 0x0f;
      let len = buf[1]! & 0x7f;
      let off = 2;
      if (len === 126) {
        if (buf.length < 4) return;
        len = buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (buf.length < 10) return;
        len = Number(buf.readBigUInt64BE(2));
        off = 10;
      }
      if (buf.length < off + len) return;
      const payload = buf.subarray(off, off + len);
      buf = buf.subarray(off + len);
      if (opcode === 0x1) onText(payload.toString('utf8'));
      else if (opcode === 0x8) {
        code = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
        // Answer the close (masked, as a client must), then let the server end the connection.
        s.write(Buffer.from([0x88, 0x82, 0, 0, 0, 0, payload[0] ?? 3, payload[1] ?? 232]));
      }
    }
  });
  return { opened, closed, destroy: () => s.destroy() };
}
