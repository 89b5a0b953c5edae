import { randomBytes, randomInt } from 'node:crypto';
import { createServer } from 'node:http';
import type { Duplex } from 'node:stream';
import express from 'express';
import { WebSocketServer, type WebSocket } from 'ws';
import { openApiDocument, parseChannel, type ErrorBody } from '@alarmcast/contracts';
import { createPgPool } from '@alarmcast/db';
import { createLogger, type Logger, type Registry } from '@alarmcast/observability';
import {
  createPubSubTransport,
  createRedisClient,
  readStateSnapshot,
  readTaskSnapshots,
  readUserLogAfter,
  readUserLogTail,
  RedisKeys,
  shardsFor,
} from '@alarmcast/redis';
import { channelAuthRouter } from './channel-auth.js';
import { ChannelPublisher } from './channel-publisher.js';
import { httpApiRouter } from './http-api.js';
import { CLOSE_REASONS, PUSHER_CODES, type PusherCode } from './close-codes.js';
import type { EdgeConfig } from './config.js';
import {
  apiDocsRouter,
  clientIp,
  compileTrustProxy,
  jsonErrorHandler,
  notFoundHandler,
  rateLimits,
  servedRoutes,
  type ServedRoute,
} from '@alarmcast/http';
import { Counter } from '@alarmcast/observability';
import { createEdgeMetrics } from './metrics.js';
import { DeliveryLog } from './delivery-log.js';
import { OpsReporter } from './ops-reporter.js';
import { PusherConnection } from './pusher-connection.js';
import { serverFrames } from './pusher-protocol.js';
import { ChannelSubscriptions } from './subscriptions.js';
import { AccessWatcher } from './access-watcher.js';
import { Revocation } from './revocation.js';
import {
  httpServerOptions,
  probeHandler,
  startInternalServer,
  type InternalServer,
  type Readiness,
} from '@alarmcast/service';

export interface EdgeOptions {
  /** @defaultValue a pino logger for service `ws-edge` at `config.logLevel` */
  logger?: Logger;
  /**
   * Bytes a socket may have queued and unsent before it is closed with 4100 (back off, reconnect). An alarm
   * frame is 1-2 KiB, so 1 MiB is several hundred undelivered events: a client that far behind is not
   * reading, and holding more for it only moves the problem into this process's heap.
   * @defaultValue 1 MiB
   */
  maxBufferedBytes?: number;
  /**
   * How long close() waits for clients to answer its close frame before cutting them off.
   * @defaultValue 5000 ms, well inside Kubernetes' default 30 s termination grace period
   */
  drainTimeoutMs?: number;
  /**
   * `client-*` events one socket may send per second; more get `pusher:error` 4301 and are dropped.
   * @defaultValue 10, Pusher's limit
   */
  clientEventsPerSecond?: number;
  /**
   * Start the internal server (`/healthz`, `/readyz`, `/metrics` on `config.internalPort`). A worker of
   * `EDGE_WORKERS` starts none: its primary serves every worker's on that port. @defaultValue true
   */
  internalServer?: boolean;
  /**
   * This process's worker slot (1..count), so that socket ids are unique across the node's workers: worker
   * i numbers its sockets i, i + count, i + 2·count, ... @defaultValue one process: 1, 2, 3, ...
   */
  worker?: { index: number; count: number };
}

export interface EdgeServer {
  port: number;
  /** `http://host:port`; WebSocket clients connect to `ws://host:port/app/{key}?protocol=7` */
  url: string;
  /** the internal server's `http://host:port`: `/healthz`, `/readyz`, `/metrics` (none in a worker) */
  internalUrl: string | undefined;
  metrics: Registry;
  /** what `/readyz` answers: Redis and Postgres reachable and not draining */
  readiness: () => Promise<Readiness>;
  /** every route the public app registered (the contract test checks each is in the OpenAPI document) */
  routes: ServedRoute[];
  /** this node's channel registry (which channels its sockets hold) */
  subscriptions: ChannelSubscriptions;
  /** whether this node's access-change listener is connected (LISTEN in place) */
  readonly listeningForAccessChanges: boolean;
  /** open client sockets on this node */
  readonly connectionCount: number;
  /** Closes every socket with 4200 (reconnect now, to another node), stops listening, closes Redis and Postgres. */
  close(): Promise<void>;
}

const APP_PATH = /^\/app\/([^/]+)$/;

function destroySocket(this: Duplex): void {
  this.destroy();
}

/**
 * Starts one edge node: a single HTTP server carrying the Pusher WebSocket endpoint (`/app/{key}`), channel
 * authorization, health and metrics. The node keeps no state another node needs, so any number run behind
 * a load balancer, each subscribed on Redis to exactly the channels its own sockets hold.
 */
export async function startEdge(config: EdgeConfig, options: EdgeOptions = {}): Promise<EdgeServer> {
  const log = options.logger ?? createLogger({ service: 'ws-edge', level: config.logLevel });
  const maxBufferedBytes = options.maxBufferedBytes ?? 1024 * 1024;
  const drainTimeoutMs = options.drainTimeoutMs ?? 5000;

  const connections = new Set<PusherConnection>();
  let draining = false;
  let onDrained: (() => void) | null = null;

  // On a Redis Cluster (REDIS_CLUSTER_NODES): sharded pub/sub, a subscriber connection per master.
  const target = { url: config.redisUrl, clusterNodes: config.redisClusterNodes };
  const subscriber = createRedisClient(target, { name: 'ws-edge:sub', shardedSubscribers: true });
  // Without a listener ioredis prints every failed reconnect as an unhandled error; /readyz reports the state.
  subscriber.on('error', (err: Error) => log.warn({ err: err.message }, 'redis subscriber error'));
  // Channel authorization and the access re-checks are lookups by key, several with array parameters, which
  // Postgres would plan afresh at every call (db pool.ts, keyedLookupsOnly: 10,010 plans for 10,000 calls of
  // find_visible_devices in a campaign run, planning 8x its execution).
  const pool = createPgPool(config.databaseUrl, { max: 5, keyedLookupsOnly: true });
  // A subscribed connection can run no other command, so publishing (HTTP API, client events) has its own.
  const publisherRedis = createRedisClient(target, { name: 'ws-edge:pub' });
  publisherRedis.on('error', (err: Error) => log.warn({ err: err.message }, 'redis publisher error'));
  const keys = new RedisKeys(config.redisPrefix, { shards: shardsFor(target) });
  const transport = createPubSubTransport(publisherRedis, subscriber);
  const publisher = new ChannelPublisher(transport, keys);

  const deliveryLog = new DeliveryLog({ log });
  const subscriptions = new ChannelSubscriptions({
    transport,
    keys,
    log,
    onDropped: (reason) => metrics.framesDropped.inc({ reason }),
    onDelivered: ({ source, eventId, sockets }) => {
      // A user log id is `<ms>-<seq>` of Redis' clock at the append, just before the resolver published:
      // now minus that is the pub/sub hop (plus any skew between this host's clock and Redis').
      // An eventId that is not `<ms>-<seq>` reads NaN and is not observed.
      const appendedAt = eventId === undefined ? NaN : Number(eventId.slice(0, eventId.indexOf('-')));
      if (appendedAt > 0) metrics.pubsubLag.observe(Math.max(0, Date.now() - appendedAt) / 1000);
      if (source !== undefined) deliveryLog.record(source, sockets);
    },
  });
  const metrics = createEdgeMetrics({
    connections: () => connections.size,
    subscriptionsByKind: () => subscriptions.membershipsByKind(),
    redisChannels: () => subscriptions.channelCount,
  });

  // The operator view's record of this node (GET /v1/admin/status on the ingest reads it from Redis).
  const ops = new OpsReporter({
    redis: publisherRedis,
    keys,
    node: `${publisher.nodeId}:${randomBytes(3).toString('hex')}`,
    log,
    status: () => ({
      connections: connections.size,
      subscriptions: Object.fromEntries(subscriptions.membershipsByKind()),
      redisChannels: subscriptions.channelCount,
      draining,
    }),
  });

  // Abuse limits. Rate limits are shared by every edge through Redis and fail open (counted) while it is
  // away; connection caps are per node (each node counts its own sockets).
  const connectionsRefused = new Counter({
    name: 'ws_edge_connections_closed_by_limit_total',
    help: 'Sockets closed by a connection cap (per IP, per user) or for subscribing to nothing in time',
    labelNames: ['reason'] as const,
    registers: [metrics.registry],
  });
  for (const reason of ['per_ip', 'per_user', 'no_subscription']) connectionsRefused.inc({ reason }, 0);
  const rateLimit = rateLimits({
    redis: publisherRedis,
    keyPrefix: (name) => keys.rateLimit(name),
    metrics: metrics.registry,
    log,
  });
  const { rateLimits: limitsConfig, connectionCaps } = config;
  const authLimits = {
    perIp: rateLimit(
      'channel-auth-ip',
      limitsConfig.channelAuthPerIp,
      limitsConfig.windowS,
      'channel authorizations from this IP',
    ),
    perUser: rateLimit(
      'channel-auth-user',
      limitsConfig.channelAuthPerUser,
      limitsConfig.windowS,
      'channel authorizations for this user',
    ),
    failures: rateLimit(
      'auth-failures-ip',
      limitsConfig.authFailuresPerIp,
      60,
      'failed authentications from this IP',
    ),
  };
  const trustProxy = compileTrustProxy(config.trustProxy);
  /** open sockets per client IP and per user on this node, and whose each socket is */
  const socketsPerIp = new Map<string, number>();
  const socketsPerUser = new Map<number, number>();
  const ipOf = new Map<PusherConnection, string>();
  const userOf = new Map<PusherConnection, number>();
  const release = <K>(counts: Map<K, number>, key: K | undefined): void => {
    if (key === undefined) return;
    const n = (counts.get(key) ?? 1) - 1;
    if (n <= 0) counts.delete(key);
    else counts.set(key, n);
  };

  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', config.trustProxy);
  const readiness = async (): Promise<Readiness> => {
    const redis = subscriber.status === 'ready' && publisher.ready;
    const database = await databaseReachable();
    if (redis && database && !draining) return { ready: true, body: { status: 'ready' } };
    const body: ErrorBody = {
      error: { code: 'service_unavailable', message: 'not ready', details: { redis, database, draining } },
    };
    return { ready: false, body };
  };
  // /healthz and /readyz stay on the public port too, for a load balancer that probes the port it serves;
  // /metrics is only on the internal port.
  const probes = probeHandler({ readiness });
  app.use((req, res, next) => {
    if (!probes(req, res)) next();
  });
  // The API's own description: /openapi.json and /docs, generated from the routes' declarations.
  app.use(apiDocsRouter(openApiDocument('ws-edge')));
  app.use(
    channelAuthRouter({
      config,
      pool,
      log,
      onOutcome: (outcome) => metrics.channelAuth.inc({ outcome }),
      limits: authLimits,
    }),
  );
  app.use(
    httpApiRouter({
      app: config.app,
      publisher,
      log,
      onOutcome: (outcome, events) => {
        metrics.httpApiRequests.inc({ outcome });
        if (events > 0) metrics.httpApiEvents.inc({ outcome: 'published' }, events);
      },
      onSkipped: (count) => metrics.httpApiEvents.inc({ outcome: 'skipped' }, count),
    }),
  );
  // Live revocation: a dedicated LISTEN connection (access-watcher.ts) and the re-check (revocation.ts).
  const revocations = new Counter({
    name: 'ws_edge_revocations_total',
    help: 'Subscriptions ended while connected: channel (one channel lost), connection (closed 4009), expired (closed 4203)',
    labelNames: ['kind'] as const,
    registers: [metrics.registry],
  });
  for (const kind of ['channel', 'connection', 'expired']) revocations.inc({ kind }, 0);
  const revocation = new Revocation({
    pool,
    log,
    onRevoked: (kind, userId) => {
      revocations.inc({ kind });
      ops.record('revocation', kind, userId);
    },
  });
  const accessWatcher = new AccessWatcher({
    databaseUrl: config.databaseUrl,
    log,
    onChange: (userIds) => revocation.accessChanged(userIds),
    onDeviceChange: (deviceId) => revocation.deviceChanged(deviceId),
    onListening: () => revocation.recheckAll(),
  });
  accessWatcher.start();

  app.use(notFoundHandler);
  app.use(jsonErrorHandler(log));

  async function databaseReachable(): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        pool.query('SELECT 1').then(() => true),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), 2000))),
      ]);
    } catch {
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  // The hard limit at which ws itself closes the socket (1009) before buffering more. Frames between
  // maxMessageBytes and this only get a `pusher:error`, so a client that sends one big frame keeps its socket.
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: Math.max(4 * config.maxMessageBytes, 64 * 1024),
    // `connections` tracks the sockets; ws' own set would cost every socket a closure and a Set entry.
    clientTracking: false,
    // No compression (ws' default too, said here because it matters): per-message deflate keeps a zlib
    // context per socket, tens of KB each, for frames of 1-2 KB.
    perMessageDeflate: false,
  });
  const server = createServer(httpServerOptions(config.httpTimeouts), app);

  // Socket ids must be unique across nodes (a channel signature is bound to one): the counter makes them
  // unique on this node (its workers count in disjoint steps), the random high part makes two nodes
  // agreeing on one vanishingly unlikely.
  const idStep = options.worker?.count ?? 1;
  let socketCounter = (options.worker?.index ?? 1) - idStep;
  const nextSocketId = (): string => `${randomInt(1, 2 ** 31 - 1)}.${(socketCounter += idStep)}`;

  const activityMs = config.activityTimeoutS * 1000;
  const context = {
    app: config.app,
    activityTimeoutS: config.activityTimeoutS,
    maxMessageBytes: config.maxMessageBytes,
    maxBufferedBytes,
    clientEventsPerSecond: options.clientEventsPerSecond ?? 10,
    subscriptions,
    publisher,
    readUserLog: (userId: number, afterId: string) => readUserLogAfter(publisherRedis, keys, userId, afterId),
    // A campaign channel has no state of its own in state-channel.ts: only its task snapshot (the progress).
    readSnapshot: (channel: string) =>
      parseChannel(channel)?.kind === 'campaign'
        ? Promise.resolve(null)
        : readStateSnapshot(publisherRedis, keys, channel),
    readTaskSnapshots: (channel: string) => readTaskSnapshots(publisherRedis, keys, channel),
    readUserLogTail: (userId: number) => readUserLogTail(publisherRedis, keys, userId),
    metrics,
    log,
    revocation,
    onExpired: () => revocations.inc({ kind: 'expired' }),
    onResumeFailed: (reason: string, userId: number) => ops.record('resume_failed', reason, userId),
    claimUser: (connection: PusherConnection, userId: number): boolean => {
      const current = userOf.get(connection);
      if (current === userId) return true;
      // A socket counts once, for the first user channel it holds (it can only be signed for its own).
      if (current !== undefined) return true;
      const n = socketsPerUser.get(userId) ?? 0;
      if (connectionCaps.perUser > 0 && n >= connectionCaps.perUser) {
        connectionsRefused.inc({ reason: 'per_user' });
        log.info({ userId, open: n }, 'socket over the per-user connection cap');
        return false;
      }
      socketsPerUser.set(userId, n + 1);
      userOf.set(connection, userId);
      return true;
    },
    onClosed: (connection: PusherConnection) => {
      connections.delete(connection);
      release(socketsPerIp, ipOf.get(connection));
      release(socketsPerUser, userOf.get(connection));
      ipOf.delete(connection);
      userOf.delete(connection);
      if (connections.size === 0) onDrained?.();
    },
  };

  function refuse(ws: WebSocket, code: PusherCode, message: string): void {
    // Pusher's order: the error as a frame (pusher-js reads it during the handshake), then the close.
    ws.on('error', () => undefined);
    ws.send(serverFrames.error(code, message));
    ws.close(code, message);
  }

  server.on('upgrade', (req, socket, head) => {
    // Not a closure: one here would share this handler's context, and so keep the upgrade request (its
    // headers, ~1 KB) alive for as long as the socket is open.
    socket.on('error', destroySocket);
    if (draining) {
      socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      const url = new URL(req.url ?? '/', 'http://edge');
      const key = APP_PATH.exec(url.pathname)?.[1];
      const protocol = url.searchParams.get('protocol');
      if (key === undefined) return refuse(ws, PUSHER_CODES.pathNotFound, CLOSE_REASONS.pathNotFound);
      if (key !== config.app.key) {
        return refuse(ws, PUSHER_CODES.appDoesNotExist, CLOSE_REASONS.appDoesNotExist);
      }
      // A client that sends no version gets v7, as with Reverb, which never looks at it.
      if (protocol !== null && !/^\d{1,3}$/.test(protocol)) {
        return refuse(ws, PUSHER_CODES.invalidVersionFormat, CLOSE_REASONS.invalidVersionFormat);
      }
      if (protocol !== null && protocol !== '7') {
        return refuse(ws, PUSHER_CODES.unsupportedProtocolVersion, CLOSE_REASONS.unsupportedProtocolVersion);
      }
      const ip = clientIp(req, trustProxy);
      const fromIp = socketsPerIp.get(ip) ?? 0;
      if (connectionCaps.perIp > 0 && fromIp >= connectionCaps.perIp) {
        connectionsRefused.inc({ reason: 'per_ip' });
        return refuse(ws, PUSHER_CODES.overConnectionQuota, CLOSE_REASONS.tooManyConnectionsFromIp);
      }
      const connection = new PusherConnection(nextSocketId(), ws, context, socket);
      socketsPerIp.set(ip, fromIp + 1);
      ipOf.set(connection, ip);
      connections.add(connection);
    });
  });

  // One sweep for all sockets instead of a timer each. A client gets activity_timeout plus half again to
  // send its own ping (pusher-js sends it at activity_timeout), then as long again to answer ours.
  const idleMs = activityMs * 1.5;
  const pongWaitMs = activityMs;
  const subscribeTimeoutMs = config.subscribeTimeoutS * 1000;
  const sweep = setInterval(
    () => {
      const now = Date.now();
      for (const connection of connections) {
        connection.checkActivity(now, idleMs, pongWaitMs);
        // A socket that never subscribes holds a slot and a file descriptor for nothing.
        if (
          subscribeTimeoutMs > 0 &&
          !connection.everSubscribed &&
          connection.isOpen &&
          now - connection.connectedAt >= subscribeTimeoutMs
        ) {
          connectionsRefused.inc({ reason: 'no_subscription' });
          connection.close(PUSHER_CODES.closedAfterInactivity, CLOSE_REASONS.noSubscription);
        }
      }
    },
    Math.max(250, Math.min(activityMs / 4, subscribeTimeoutMs > 0 ? subscribeTimeoutMs / 4 : Infinity)),
  );
  sweep.unref();

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.port, config.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    clearInterval(sweep);
    revocation.close();
    await accessWatcher.close();
    subscriber.disconnect();
    publisherRedis.disconnect();
    await pool.end();
    throw err;
  }
  let internal: InternalServer | undefined;
  try {
    if (options.internalServer ?? true) {
      internal = await startInternalServer({
        host: config.host,
        port: config.internalPort,
        metrics: metrics.registry,
        readiness,
      });
    }
  } catch (err) {
    clearInterval(sweep);
    server.close();
    subscriber.disconnect();
    publisherRedis.disconnect();
    await pool.end();
    throw err;
  }
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;

  /**
   * Closes sockets with 4200 in equal slices over `spreadMs` (at once for 0): pusher-js reconnects at once on
   * 4200, so a node closing 10,000 sockets in one instant sends 10,000 handshakes and channel authorizations
   * to the others in that instant; spread over 20 s it is 500 a second.
   */
  async function closeSpread(toClose: PusherConnection[], spreadMs: number): Promise<void> {
    const slices = spreadMs > 0 ? Math.min(toClose.length, Math.ceil(spreadMs / 100)) : 1;
    const perSlice = Math.ceil(toClose.length / Math.max(1, slices));
    for (let i = 0; i < toClose.length; i += perSlice) {
      if (i > 0) await new Promise((resolve) => setTimeout(resolve, spreadMs / slices));
      for (const connection of toClose.slice(i, i + perSlice))
        connection.close(PUSHER_CODES.reconnect, CLOSE_REASONS.shuttingDown);
    }
  }

  let closing: Promise<void> | null = null;
  async function shutdown(): Promise<void> {
    draining = true;
    clearInterval(sweep);
    const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    if (connections.size > 0) {
      const drained = new Promise<void>((resolve) => (onDrained = resolve));
      await closeSpread([...connections], config.drainSpreadS * 1000);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        drained,
        new Promise<void>((resolve) => (timer = setTimeout(resolve, drainTimeoutMs))),
      ]);
      clearTimeout(timer);
      for (const connection of connections) connection.terminate();
    }
    server.closeAllConnections();
    wss.close();
    await stopped;
    await internal?.close();
    await ops.close();
    // QUIT waits for a reply, which a Redis that is away would never send.
    for (const redis of [subscriber, publisherRedis]) {
      if (redis.status === 'ready') await redis.quit().catch(() => redis.disconnect());
      else redis.disconnect();
    }
    revocation.close();
    await accessWatcher.close();
    await pool.end();
    deliveryLog.close();
    log.info('ws-edge stopped');
  }

  return {
    port,
    url: `http://${host}:${port}`,
    internalUrl: internal?.url,
    metrics: metrics.registry,
    readiness,
    routes: servedRoutes(app),
    subscriptions,
    get listeningForAccessChanges() {
      return accessWatcher.listening;
    },
    get connectionCount() {
      return connections.size;
    },
    close: () => (closing ??= shutdown()),
  };
}
