/**
 * The Socket.IO peer's server node: what a Node team would deploy instead of ws-edge. One room per user,
 * joined after the same checks ws-edge makes before signing a user's channel (valid JWT, active user).
 *
 *   node --conditions=source --import tsx tests/bench/src/peer/socketio-server.ts
 *   env: PEER_PORT, HOST, REDIS_URL, REDIS_PREFIX, DATABASE_URL, JWT_SECRET
 */
import { createServer } from 'node:http';
import { Server, type DefaultEventsMap as Events } from 'socket.io';
import { createAdapter } from '@socket.io/redis-adapter';
import { verifyUserJwt } from '@alarmcast/auth';
import { createPgPool, findCampaignTenants, findUserAccess, findVisibleDevice } from '@alarmcast/db';
import { createRedis } from '@alarmcast/redis';

const env = (name: string, fallback?: string): string => {
  const value = process.env[name] ?? fallback;
  if (value === undefined) throw new Error(`socketio-server: ${name} is required`);
  return value;
};
const port = Number(env('PEER_PORT'));
const host = env('HOST', '127.0.0.1');
const redisUrl = env('REDIS_URL');
const prefix = env('REDIS_PREFIX');
const jwtSecret = env('JWT_SECRET');
// ws-edge's pool size, so the connect-time user lookup has the same budget.
const pool = createPgPool(env('DATABASE_URL'), { max: 5 });

const http = createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/healthz') {
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
  } else {
    res.writeHead(404).end();
  }
});

const pub = createRedis(redisUrl, { name: `peer-io-${process.pid}:pub` });
const sub = createRedis(redisUrl, { name: `peer-io-${process.pid}:sub` });
const io = new Server<Events, Events, Events, { userId: number; tenantId: number | null }>(http, {
  // ws-edge runs ws without permessage-deflate; compressing here would skew the comparison either way.
  perMessageDeflate: false,
  httpCompression: false,
  transports: ['websocket'],
  serveClient: false,
  adapter: createAdapter(pub, sub, { key: `${prefix}:socket.io` }),
});

io.use((socket, next) => {
  void (async () => {
    const token: unknown = socket.handshake.auth.token;
    const claims = typeof token === 'string' ? await verifyUserJwt(jwtSecret, token) : null;
    if (!claims) return next(new Error('unauthenticated'));
    // ws-edge's mayRead for a user's own channel reduces to this: the user exists and is active.
    const access = await findUserAccess(pool, claims.userId);
    if (!access?.active) return next(new Error('forbidden'));
    socket.data.userId = claims.userId;
    socket.data.tenantId = access.tenantId;
    next();
  })().catch((err: unknown) => next(err instanceof Error ? err : new Error(String(err))));
});

io.on('connection', (socket) => {
  void socket.join(`user:${socket.data.userId}`);
  // The informs scenario: watch a device (one room per device) after the visibility check alarmcast's
  // channel auth makes for private-device.{id} (the device's tenant or a share); acknowledged true/false.
  socket.on('watch', (deviceId: unknown, ack: unknown) => {
    const answer = typeof ack === 'function' ? (ack as (ok: boolean) => void) : () => {};
    if (typeof deviceId !== 'number' || !Number.isInteger(deviceId) || deviceId < 1) return answer(false);
    const viewer = { userId: socket.data.userId, tenantId: socket.data.tenantId };
    findVisibleDevice(pool, viewer, deviceId).then(
      (device) => {
        if (device !== null) void socket.join(`device:${deviceId}`);
        answer(device !== null);
      },
      () => answer(false),
    );
  });
  // The campaign scenario: watch a campaign (its room) after the check alarmcast's channel auth makes for
  // private-campaign.{id}: the user (active, checked at connect) is a member of the campaign's tenant.
  socket.on('watchCampaign', (campaignId: unknown, ack: unknown) => {
    const answer = typeof ack === 'function' ? (ack as (ok: boolean) => void) : () => {};
    if (typeof campaignId !== 'string' || !/^[A-Za-z0-9_-]{1,36}$/.test(campaignId)) return answer(false);
    findCampaignTenants(pool, [campaignId]).then(
      (tenants) => {
        const ok = socket.data.tenantId !== null && tenants.get(campaignId) === socket.data.tenantId;
        if (ok) void socket.join(`campaign:${campaignId}`);
        answer(ok);
      },
      () => answer(false),
    );
  });
});

await new Promise<void>((resolve, reject) => {
  http.once('error', reject);
  http.listen(port, host, resolve);
});
console.log(`socketio-server listening on http://${host}:${port}`);

let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    void io.close().finally(() => {
      pub.disconnect();
      sub.disconnect();
      void pool.end().finally(() => process.exit(0));
    });
  });
}
