import { vi } from 'vitest';
import { WebSocket } from 'ws';
import PusherModule from 'pusher-js';
import { signChannelAuth, signUserJwt } from '@alarmcast/auth';
import { createPrismaClient, type PrismaClient } from '@alarmcast/db';
import {
  RedisKeys,
  createPubSubTransport,
  createRedisClient,
  encodeChannelEvent,
  shardsFor,
  type PubSubTransport,
  type RedisConnection,
} from '@alarmcast/redis';
import { createTestDatabase, testEnv, uniqueRedisPrefix, type RedisTopology } from '@alarmcast/testing';
import { parseEdgeConfig, type EdgeConfig } from '../src/config.js';
import { startEdge, type EdgeOptions, type EdgeServer } from '../src/server.js';

// pusher-js' node build is CommonJS with `module.exports = Pusher`, while its typings declare an ES default
// export: under NodeNext the default import is typed as the module object. This gives the class its type.
export const Pusher = PusherModule as unknown as typeof PusherModule.default;
export type Pusher = InstanceType<typeof Pusher>;

/** Everything one test file needs: its own database and Redis prefix, edges, clients; `teardown` frees all. */
export interface EdgeWorld {
  prisma: PrismaClient;
  /** a plain connection for publishing and inspecting pub/sub (a cluster client on a Redis Cluster) */
  redis: RedisConnection;
  keys: RedisKeys;
  config: (env?: Record<string, string>) => EdgeConfig;
  /** an edge for one test, closed by `closeTracked` */
  startEdge: (env?: Record<string, string>, options?: EdgeOptions) => Promise<EdgeServer>;
  /** an edge for the whole file (start it in beforeAll), closed by `teardown` */
  startSharedEdge: (env?: Record<string, string>, options?: EdgeOptions) => Promise<EdgeServer>;
  jwt: (userId: number, ttlSeconds?: number) => Promise<string>;
  /** registers something for `closeTracked` (clients, edges) */
  track: <T>(value: T, close: (value: T) => unknown) => T;
  /** closes what was tracked, newest first: call it after each test so tests share no sockets or edges */
  closeTracked: () => Promise<void>;
  teardown: () => Promise<void>;
}

/**
 * `shards`: the RedisKeys shard count the edges will use (USER_SHARDS for an edge on a cluster).
 * `topology`: the Redis the edges and `redis` use (packages/testing `startRedisTopology`); its shard count
 * then comes from it. @defaultValue the run's single Redis
 */
export async function createEdgeWorld(
  options: { shards?: number; topology?: RedisTopology } = {},
): Promise<EdgeWorld> {
  const env = testEnv();
  const db = await createTestDatabase(env.postgresAdminUrl, env.postgresTemplate);
  const prisma = createPrismaClient(db.url);
  const redisUrl = env.redisUrl;
  const topology = options.topology;
  const redis = createRedisClient(topology?.target ?? { url: redisUrl }, { name: 'ws-edge-test' });
  const prefix = uniqueRedisPrefix();
  const closers: (() => unknown)[] = [];
  const shared: EdgeServer[] = [];
  const config = (env: Record<string, string> = {}): EdgeConfig =>
    parseEdgeConfig({
      NODE_ENV: 'test',
      EDGE_PORT: '0',
      EDGE_INTERNAL_PORT: '0',
      DATABASE_URL: db.url,
      REDIS_URL: redisUrl,
      ...topology?.env,
      REDIS_PREFIX: prefix,
      LOG_LEVEL: 'silent',
      ...env,
    });
  const world: EdgeWorld = {
    prisma,
    redis,
    keys: new RedisKeys(prefix, { shards: topology ? shardsFor(topology.target) : options.shards }),
    config,
    track: (value, close) => {
      closers.push(() => close(value));
      return value;
    },
    startEdge: async (env, options) => {
      const edge = await startEdge(config(env), options);
      return world.track(edge, (e) => e.close());
    },
    startSharedEdge: async (env, options) => {
      const edge = await startEdge(config(env), options);
      shared.push(edge);
      return edge;
    },
    jwt: (userId, ttlSeconds) => signUserJwt(config().jwtSecret, userId, ttlSeconds),
    closeTracked: async () => {
      for (let close = closers.pop(); close; close = closers.pop()) await close();
    },
    teardown: async () => {
      await world.closeTracked();
      for (const edge of shared) await edge.close();
      redis.disconnect();
      await prisma.$disconnect();
      await db.drop();
    },
  };
  return world;
}

/** A tenant with users; `inactive` users exist but may not subscribe. */
export async function provisionTenant(
  prisma: PrismaClient,
  name: string,
  users: { name: string; active?: boolean }[],
): Promise<{ tenantId: number; userIds: number[] }> {
  const tenant = await prisma.tenant.create({
    data: { name, slug: `${name}-${Math.random().toString(36).slice(2, 8)}` },
  });
  const userIds: number[] = [];
  for (const u of users) {
    const user = await prisma.user.create({
      data: {
        tenantId: tenant.id,
        name: u.name,
        email: `${u.name}-${tenant.id}@example.test`,
        active: u.active ?? true,
      },
    });
    userIds.push(user.id);
  }
  return { tenantId: tenant.id, userIds };
}

/** one transport per connection (each would add its own listeners to it) */
const transports = new WeakMap<RedisConnection, PubSubTransport>();

function transportOf(world: EdgeWorld): PubSubTransport {
  let transport = transports.get(world.redis);
  if (!transport) transports.set(world.redis, (transport = createPubSubTransport(world.redis, world.redis)));
  return transport;
}

/** What a resolver does: one envelope on the channel's Redis pub/sub channel. */
export async function publish(
  world: EdgeWorld,
  channel: string,
  event: string,
  data: string,
): Promise<number> {
  const message = encodeChannelEvent({ node: 'test', channel, event, data });
  return transportOf(world).publish(world.keys.pubsubChannel(channel), message);
}

/** Several envelopes on one channel in one Redis pipeline (so the edge reads them together). */
export async function publishMany(
  world: EdgeWorld,
  channel: string,
  event: string,
  datas: readonly string[],
): Promise<void> {
  await transportOf(world).publishMany(
    datas.map((data) => ({
      channel: world.keys.pubsubChannel(channel),
      message: encodeChannelEvent({ node: 'test', channel, event, data }),
    })),
  );
}

export async function numsub(world: EdgeWorld, channel: string): Promise<number> {
  const reply = (await world.redis.pubsub('NUMSUB', world.keys.pubsubChannel(channel))) as [string, number];
  return Number(reply[1]);
}

export function pusherClient(edge: EdgeServer, appKey: string, jwt: string): Pusher {
  return new Pusher(appKey, {
    cluster: 'mt1',
    wsHost: '127.0.0.1',
    wsPort: edge.port,
    forceTLS: false,
    enabledTransports: ['ws'],
    disableStats: true,
    channelAuthorization: {
      endpoint: `${edge.url}/broadcasting/auth`,
      transport: 'ajax',
      headers: { Authorization: `Bearer ${jwt}` },
    },
  });
}

export async function connectedSocketId(pusher: Pusher): Promise<string> {
  return vi.waitFor(
    () => {
      const id = pusher.connection.socket_id;
      if (pusher.connection.state !== 'connected' || !id) throw new Error(`state ${pusher.connection.state}`);
      return id;
    },
    { timeout: 10_000, interval: 20 },
  );
}

export interface Frame {
  event: string;
  channel?: string;
  data?: unknown;
}

/** A bare WebSocket client that records every frame, for what pusher-js would never send. */
export class RawClient {
  readonly frames: Frame[] = [];
  closed: { code: number; reason: string } | null = null;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      this.frames.push(JSON.parse(String(data)) as Frame);
    });
    ws.on('close', (code, reason) => (this.closed = { code, reason: reason.toString() }));
  }

  static async connect(world: EdgeWorld, edge: EdgeServer, path?: string): Promise<RawClient> {
    const url = `${edge.url.replace(/^http/, 'ws')}${path ?? `/app/${world.config().app.key}?protocol=7`}`;
    const ws = new WebSocket(url);
    const client = world.track(new RawClient(ws), (c) => c.ws.terminate());
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return client;
  }

  async socketId(): Promise<string> {
    const frame = await this.next((f) => f.event === 'pusher:connection_established');
    return (JSON.parse(frame.data as string) as { socket_id: string }).socket_id;
  }

  send(frame: Frame): void {
    this.ws.send(JSON.stringify(frame));
  }

  /** Waits for a frame matching `match`, received at or after index `from`. */
  async next(match: (f: Frame) => boolean, from = 0): Promise<Frame> {
    return vi.waitFor(
      () => {
        const found = this.frames.slice(from).find(match);
        if (!found) throw new Error(`no matching frame among ${JSON.stringify(this.frames.slice(from))}`);
        return found;
      },
      { timeout: 10_000, interval: 10 },
    );
  }

  async closedWith(): Promise<{ code: number; reason: string }> {
    return vi.waitFor(
      () => {
        if (!this.closed) throw new Error('still open');
        return this.closed;
      },
      { timeout: 10_000, interval: 10 },
    );
  }
}

/**
 * A `pusher:subscribe` payload signed as /broadcasting/auth signs it, with the subscription's owner in
 * `channel_data` (needed on tenant channels): what a raw client sends where pusher-js would ask the edge.
 */
export function ownedSubscription(
  world: EdgeWorld,
  socketId: string,
  channel: string,
  userId: number,
  { exp = Math.floor(Date.now() / 1000) + 3600, iat = Math.floor(Date.now() / 1000) } = {},
): { channel: string; auth: string; channel_data: string } {
  const { key, secret } = world.config().app;
  const channelData = JSON.stringify({ user_id: userId, exp, iat });
  return {
    channel,
    auth: signChannelAuth(key, secret, socketId, channel, channelData),
    channel_data: channelData,
  };
}

/** `data` of a `pusher:error` frame, decoded. */
export function errorData(frame: Frame): { code: number | null; message: string } {
  return JSON.parse(frame.data as string) as { code: number | null; message: string };
}

/** Current value of a metric on one edge, summed over the series that carry `labels`. */
export async function metricValue(
  edge: EdgeServer,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const metric = edge.metrics.getSingleMetric(name);
  if (!metric) return 0;
  const { values } = await metric.get();
  return values
    .filter((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want))
    .reduce((sum, v) => sum + v.value, 0);
}
