import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import helmet from 'helmet';
import { CONSOLE_DIST_DIR, type ConsoleConfig } from '@alarmcast/console';
import { Queue } from 'bullmq';
import {
  ALARM_BATCH_BODY_LIMIT_BYTES,
  BROADCAST_QUEUE,
  CAMPAIGN_BODY_LIMIT_BYTES,
  DEVICE_INFORM_BATCH_BODY_LIMIT_BYTES,
  INGEST_BODY_LIMIT_BYTES,
  ROUTES,
  expressPath,
  openApiDocument,
} from '@alarmcast/contracts';
import { createPgPool, outboxBacklog, type OutboxBacklog } from '@alarmcast/db';
import type { RateLimit } from '@alarmcast/http';
import {
  ApiError,
  apiDocsRouter,
  jsonErrorHandler,
  notFoundHandler,
  rateLimits,
  servedRoutes,
  type ServedRoute,
} from '@alarmcast/http';
import {
  createLogger,
  createMetricsRegistry,
  instrumentBreaker,
  Counter,
  Gauge,
  Histogram,
  type Logger,
  type Registry,
} from '@alarmcast/observability';
import {
  RedisKeys,
  StateChannelFlusher,
  StateChannelWriter,
  createPubSubTransport,
  createRedisClient,
  shardsFor,
} from '@alarmcast/redis';
import { httpServerOptions, probeHandler, startInternalServer, type Readiness } from '@alarmcast/service';
import type { IngestConfig } from './config.js';
import { createDbBreaker } from './db-breaker.js';
import { admissionControl } from './admission.js';
import { adminRouter } from './admin-route.js';
import { alarmBatchRouter } from './alarm-batch-route.js';
import { collectorAuth } from './collector-auth.js';
import { alarmsRouter } from './alarms-route.js';
import { deviceInformsRouter } from './device-informs-route.js';
import { DeviceStatePublisher, TenantSummary } from './device-state.js';
import { PresenceDetector } from './presence-detector.js';
import { preferencesRouter } from './preferences-route.js';
import { startIdempotencyPruner } from './idempotency.js';
import { OutboxDispatcher, bullEnqueue, type EnqueueBroadcasts } from './outbox.js';
import { campaignsRouter } from './campaigns-route.js';
import { TaskLivePublisher } from './task-live.js';
import { confirmDownloads, tasksRouter } from './tasks-route.js';
import { deviceReadsRouter } from './device-reads-route.js';
import { userAuth } from './user-auth.js';

export interface IngestOptions {
  logger?: Logger;
  /**
   * Wraps the enqueue step, for fault injection in tests (e.g. fail once right after a commit); the
   * wrapped function is the real BullMQ enqueue.
   */
  wrapEnqueue?: (enqueue: EnqueueBroadcasts) => EnqueueBroadcasts;
  /**
   * Start the internal server (`/healthz`, `/readyz`, `/metrics` on `INGEST_INTERNAL_PORT`). A worker of
   * `INGEST_WORKERS` starts none: its primary serves every worker's on that port. @defaultValue true
   */
  internalServer?: boolean;
}

export interface IngestServer {
  port: number;
  url: string;
  /** the internal server's `http://host:port`: `/healthz`, `/readyz`, `/metrics` (none in a worker) */
  internalUrl: string | undefined;
  outbox: OutboxDispatcher;
  metrics: Registry;
  /** what `/readyz` answers: Postgres reachable (the queue's state reported) */
  readiness: () => Promise<Readiness>;
  /** every route the public app registered (the contract test checks each is in the OpenAPI document) */
  routes: ServedRoute[];
  /** live task and campaign broadcasts (state channels) */
  live: TaskLivePublisher;
  /** this process's presence detector (it sweeps by itself every PRESENCE_SWEEP_INTERVAL_MS) */
  presence: PresenceDetector;
  /** this process's tenant summaries (flushed by themselves every TENANT_SUMMARY_INTERVAL_MS) */
  tenantSummary: TenantSummary;
  /** Stops accepting, finishes in-flight requests, hands every committed event to the queue, disconnects. */
  close: () => Promise<void>;
}

export async function startIngest(config: IngestConfig, options: IngestOptions = {}): Promise<IngestServer> {
  const log = options.logger ?? createLogger({ service: 'alarm-ingest', level: config.LOG_LEVEL });
  const metrics = createMetricsRegistry('alarm-ingest');
  const keys = new RedisKeys(config.REDIS_PREFIX, {
    shards: shardsFor({ clusterNodes: config.REDIS_CLUSTER_NODES }),
  });
  const pool = createPgPool(config.DATABASE_URL, { max: config.DB_POOL_MAX });
  // The process' background work, never queued behind requests waiting for `pool`: the outbox's marks and
  // relay, and the campaign progress reads (a broadcast due each second must not wait behind a backlog of
  // task reports). The outbox's own writes (enqueued_at) are bookkeeping: one lost in a crash makes the
  // relay enqueue its event again, a no-op. They need not wait for the WAL flush as the alarm's commit
  // does (on these machines the flushes cost Postgres more CPU than the statements).
  // Its statements look rows up by key in tables that grow from empty (db pool.ts, keyedLookupsOnly).
  const backgroundPool = createPgPool(config.DATABASE_URL, {
    max: 2,
    asyncCommit: true,
    keyedLookupsOnly: true,
  });
  // No offline queue: while Redis is away an enqueue fails at once and the outbox relay takes over,
  // instead of requests' follow-up work piling up in memory.
  const redis = createRedisClient(
    { url: config.REDIS_URL, clusterNodes: config.REDIS_CLUSTER_NODES },
    { name: 'alarm-ingest:queue', enableOfflineQueue: false },
  );
  redis.on('error', (err) => log.debug({ err }, 'redis connection error'));
  const queue = new Queue(BROADCAST_QUEUE, { connection: redis, prefix: keys.bullPrefix });
  // Live task and campaign state is published straight onto its channels (no outbox: the next message
  // carries the whole state again). This process only publishes, so the queue's connection serves as both
  // of the transport's connections (it never enters subscriber mode).
  const live = new TaskLivePublisher({
    pool: backgroundPool,
    redis,
    transport: createPubSubTransport(redis, redis),
    keys,
    log,
    node: `alarm-ingest:${process.pid}`,
    progressIntervalMs: config.CAMPAIGN_PROGRESS_INTERVAL_MS,
    campaignTaskConflateMs: config.CAMPAIGN_TASK_CONFLATE_MS,
  });
  const failurePolicy = { minSample: config.CAMPAIGN_FAILURE_MIN_SAMPLE };
  queue.on('error', (err) => log.debug({ err }, 'queue error'));

  const { call: db, breaker } = createDbBreaker({ retryAfterS: config.RETRY_AFTER_S });
  instrumentBreaker(metrics, breaker, 'postgres');
  breaker.on('open', () => log.warn('postgres breaker open: answering 503 until it recovers'));
  breaker.on('close', () => log.info('postgres breaker closed'));

  // What the outbox still has to broadcast, read at scrape time (every ingest process reports the same
  // numbers: aggregate with max, not sum). A scrape while Postgres is away keeps the last values.
  let backlog: OutboxBacklog = { pending: 0, oldestPendingAgeS: 0 };
  let reading: Promise<OutboxBacklog> | undefined;
  // One query per scrape for both gauges: prom-client collects them concurrently, so both share it.
  const readBacklog = (): Promise<OutboxBacklog> =>
    (reading ??= outboxBacklog(backgroundPool)
      .then(
        (b) => (backlog = b),
        (err: unknown) => {
          log.debug({ err }, 'could not read the outbox backlog');
          return backlog;
        },
      )
      .finally(() => (reading = undefined)));
  new Gauge({
    name: 'ingest_outbox_pending',
    help: 'Outbox events not yet broadcast by a resolver (counted up to 100,000)',
    registers: [metrics],
    async collect() {
      this.set((await readBacklog()).pending);
    },
  });
  new Gauge({
    name: 'ingest_outbox_oldest_pending_age_seconds',
    help: 'Age of the oldest outbox event not yet broadcast (0 when none is pending)',
    registers: [metrics],
    async collect() {
      this.set((await readBacklog()).oldestPendingAgeS);
    },
  });

  const enqueue = options.wrapEnqueue ? options.wrapEnqueue(bullEnqueue(queue)) : bullEnqueue(queue);
  const outbox = new OutboxDispatcher(backgroundPool, enqueue, log, {
    relayIntervalMs: config.OUTBOX_RELAY_INTERVAL_MS,
    relayGraceMs: config.OUTBOX_RELAY_GRACE_MS,
    redeliverAfterMs: config.OUTBOX_REDELIVER_AFTER_MS,
  });
  // Live state (device status, tenant summaries): conflated in Redis by one script for every process.
  const stateWriter = new StateChannelWriter(redis, keys, { node: `alarm-ingest:${process.pid}` });
  const stateFlusher = new StateChannelFlusher(stateWriter, {
    intervalMs: 100,
    onError: (err) => log.debug({ err }, 'state flush failed'),
  });
  const stateWriteFailures = new Counter({
    name: 'device_state_write_failures_total',
    help: 'Batches of device states that could not be written to Redis (live status only; Postgres has them)',
    registers: [metrics],
  });
  const tenantSummary = new TenantSummary(pool, stateWriter, {
    intervalMs: config.TENANT_SUMMARY_INTERVAL_MS,
    log,
  });
  const deviceStates = new DeviceStatePublisher(stateWriter, tenantSummary, {
    minIntervalMs: config.DEVICE_STATUS_MIN_INTERVAL_MS,
    log,
    onError: () => stateWriteFailures.inc(),
  });
  const informsAccepted = new Counter({
    name: 'device_informs_accepted_total',
    help: 'Device informs written (changed or unchanged; duplicates and refusals not counted)',
    registers: [metrics],
  });
  const devicesOffline = new Counter({
    name: 'devices_went_offline_total',
    help: 'Devices this process took offline (no inform within their deadline)',
    registers: [metrics],
  });
  const presence = new PresenceDetector(pool, outbox, deviceStates, {
    intervalMs: config.PRESENCE_SWEEP_INTERVAL_MS,
    batch: config.PRESENCE_SWEEP_BATCH,
    offlineAlarm: config.DEVICE_OFFLINE_ALARM,
    log,
    onOffline: (n) => devicesOffline.inc(n),
  });
  const accepted = new Counter({
    name: 'alarms_accepted_total',
    help: 'Alarm reports committed (created, updated or cleared; replays not counted)',
    registers: [metrics],
  });
  const responses = new Counter({
    name: 'http_responses_total',
    help: 'HTTP responses by route and status',
    labelNames: ['route', 'status'] as const,
    registers: [metrics],
  });

  // Rate limits, shared by every ingest process through Redis; they fail open (counted) while it is away.
  const rateLimit = rateLimits({ redis, keyPrefix: (name) => keys.rateLimit(name), metrics, log });
  const windowS = config.RATE_LIMIT_WINDOW_S;
  const authFailures = rateLimit(
    'auth-failures-ip',
    config.RATE_LIMIT_AUTH_FAILURES_PER_IP,
    60,
    'failed authentications from this IP',
  );
  const limits = {
    alarmsPerIp: rateLimit('alarms-ip', config.RATE_LIMIT_ALARMS_PER_IP, windowS, 'requests from this IP'),
    userApiPerIp: rateLimit(
      'user-api-ip',
      config.RATE_LIMIT_USER_API_PER_IP,
      windowS,
      'requests from this IP',
    ),
    collector: {
      failures: authFailures,
      perPrincipal: rateLimit(
        'alarms-token',
        config.RATE_LIMIT_ALARMS_PER_TOKEN,
        windowS,
        'requests with this collector token',
      ),
    },
    user: {
      failures: authFailures,
      perPrincipal: rateLimit(
        'user-api-user',
        config.RATE_LIMIT_USER_API_PER_USER,
        windowS,
        'requests by this user',
      ),
    },
  };
  const perIp =
    (limit: RateLimit): express.RequestHandler =>
    async (req, _res, next) => {
      await limit.consume(req.ip ?? '');
      next();
    };

  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', 'simple');
  // Who the client is, for the per-IP limits: the TCP peer unless TRUST_PROXY names the proxies in front.
  app.set('trust proxy', config.TRUST_PROXY);
  const duration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'Time from a request arriving to its answer being written, by route (POST /v1/alarms: the 202)',
    labelNames: ['route'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [metrics],
  });
  // The route label is express' route pattern (`/v1/alarms/:id/ack`), never the raw path, so it stays bounded.
  app.use((req, res, next) => {
    const end = duration.startTimer();
    res.on('finish', () => {
      const route = req.route?.path ?? 'unmatched';
      responses.inc({ route, status: String(res.statusCode) });
      end({ route });
    });
    next();
  });

  // The operator console: static files built at install, and where to find the edge.
  const edgeUrl = new URL(config.CONSOLE_EDGE_URL);
  const consoleConfig: ConsoleConfig = {
    key: config.PUSHER_APP_KEY,
    wsHost: edgeUrl.hostname,
    wsPort: Number(edgeUrl.port || (edgeUrl.protocol === 'https:' ? 443 : 80)),
    forceTLS: edgeUrl.protocol === 'https:',
    authEndpoint: new URL('/broadcasting/auth', edgeUrl).toString(),
    apiBase: '',
  };
  // The console's own security headers: a Content-Security-Policy that allows exactly what the page loads
  // (its script and stylesheet from here, the API here, the edge's WebSocket and auth endpoint), so an
  // injected script can neither run nor send the JWT anywhere else; no framing (clickjacking); nosniff.
  const edgeOrigin = edgeUrl.origin;
  const edgeWsOrigin = `${edgeUrl.protocol === 'https:' ? 'wss' : 'ws'}://${edgeUrl.host}`;
  const consoleHeaders = helmet({
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'none'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'", 'data:'],
        connectSrc: ["'self'", edgeOrigin, edgeWsOrigin],
        baseUri: ["'none'"],
        formAction: ["'none'"],
        frameAncestors: ["'none'"],
        objectSrc: ["'none'"],
      },
    },
    // The page makes cross-origin calls to the edge; COEP would demand CORP headers the edge need not send.
    crossOriginEmbedderPolicy: false,
    referrerPolicy: { policy: 'no-referrer' },
  });
  app.use((req, res, next) => {
    // Only the console's pages and assets: the API answers JSON and keeps its headers as they are.
    if (req.path === '/' || req.path === '/console' || req.path.startsWith('/console/'))
      consoleHeaders(req, res, next);
    else next();
  });
  // The page's assets are relative, so it must be loaded from /console/ (express matches /console for both).
  app.get([expressPath(ROUTES.consoleRoot), expressPath(ROUTES.consoleNoSlash)], (req, res, next) => {
    if (req.originalUrl.split('?')[0]!.endsWith('/') && req.originalUrl !== '/') next();
    else res.redirect(302, '/console/');
  });
  app.get(expressPath(ROUTES.consoleConfig), (_req, res) => {
    res.json(consoleConfig);
  });
  app.use('/console', express.static(CONSOLE_DIST_DIR, { maxAge: '1h', index: 'index.html' }));

  const readiness = async (): Promise<Readiness> => {
    const [database, queueReady] = await Promise.all([
      db(() => pool.query('SELECT 1')).then(
        () => true,
        () => false,
      ),
      redis.status === 'ready'
        ? redis.ping().then(
            () => true,
            () => false,
          )
        : Promise.resolve(false),
    ]);
    // Ingest still accepts alarms while Redis is away (the outbox holds them), so only Postgres gates
    // readiness; the Redis state is reported for operators.
    return {
      ready: database,
      body: { status: database ? 'ready' : 'unavailable', database, queue: queueReady },
    };
  };
  // /healthz and /readyz stay on the public port too, for a load balancer that probes the port it serves;
  // /metrics is only on the internal port.
  const probes = probeHandler({ readiness });
  app.use((req, res, next) => {
    if (!probes(req, res)) next();
  });
  // The API's own description: /openapi.json and /docs, generated from the routes' declarations.
  app.use(apiDocsRouter(openApiDocument('alarm-ingest')));

  // Per-IP limits before anything is parsed or looked up, so a flood costs one Redis call per request (none
  // once the IP is over its limit: the limiter remembers that until its window ends).
  app.post(expressPath(ROUTES.postAlarm), perIp(limits.alarmsPerIp));
  app.get(expressPath(ROUTES.listAlarms), perIp(limits.userApiPerIp));
  app.post(expressPath(ROUTES.acknowledgeAlarm), perIp(limits.userApiPerIp));
  app.put(expressPath(ROUTES.putTask), perIp(limits.alarmsPerIp));
  app.post(expressPath(ROUTES.createCampaign), perIp(limits.alarmsPerIp));
  app.patch(expressPath(ROUTES.patchCampaign), perIp(limits.alarmsPerIp));
  app.get(expressPath(ROUTES.listDeviceTasks), perIp(limits.userApiPerIp));
  app.get(expressPath(ROUTES.getCampaign), perIp(limits.userApiPerIp));
  app.post(expressPath(ROUTES.postDeviceInforms), perIp(limits.alarmsPerIp));
  app.get(expressPath(ROUTES.getAlarmAudience), perIp(limits.userApiPerIp));
  app.get(expressPath(ROUTES.getMyPreferences), perIp(limits.userApiPerIp));
  app.put(expressPath(ROUTES.putMyPreferences), perIp(limits.userApiPerIp));
  app.get(expressPath(ROUTES.getTenantPreferences), perIp(limits.userApiPerIp));
  app.put(expressPath(ROUTES.putTenantPreferences), perIp(limits.userApiPerIp));
  // `/v1/devices/:id` also matches `/v1/devices/summary`: one limit for every device read.
  app.get([expressPath(ROUTES.listDevices), expressPath(ROUTES.getDevice)], perIp(limits.userApiPerIp));

  // Parses JSON bodies only (other types are refused by the routes that take a body), before authentication
  // as before: a malformed or oversized body is answered without a database lookup.
  app.use('/v1', (req, _res, next) => {
    // JSON is UTF-8 (RFC 8259); the body parser would also decode utf-7 or utf-16, so refuse them first.
    const charset = /;\s*charset="?([^";\s]+)/i.exec(req.get('content-type') ?? '')?.[1];
    if (charset !== undefined && !/^utf-?8$/i.test(charset)) {
      throw new ApiError('unsupported_media_type', 'JSON bodies must be UTF-8');
    }
    next();
  });
  // A batch carries up to 1,000 reports, so it has its own, larger limit; its body is read here, and the
  // parser below then skips it (a body is read once).
  app.use(
    expressPath(ROUTES.postAlarmBatch),
    express.json({ limit: ALARM_BATCH_BODY_LIMIT_BYTES, strict: true }),
  );
  // A campaign lists up to 100,000 device ids.
  app.post(
    expressPath(ROUTES.createCampaign),
    express.json({ limit: CAMPAIGN_BODY_LIMIT_BYTES, strict: true }),
  );
  app.use(
    expressPath(ROUTES.postDeviceInforms),
    express.json({ limit: DEVICE_INFORM_BATCH_BODY_LIMIT_BYTES, strict: true }),
  );
  app.use('/v1', express.json({ limit: INGEST_BODY_LIMIT_BYTES, strict: true }));
  const admission = admissionControl({
    pool,
    queueWaiting: () => queue.getWaitingCount(),
    maxDbWaiting: config.ADMISSION_MAX_DB_WAITING,
    maxLoopDelayMs: config.ADMISSION_MAX_LOOP_DELAY_MS,
    maxQueueWaiting: config.ADMISSION_MAX_QUEUE_WAITING,
    retryAfterS: 1,
    metrics,
  });
  // One authenticator for every collector route, so they share its token caches and limits.
  const asCollector = collectorAuth(
    pool,
    db,
    config.COLLECTOR_TOKEN_CACHE_S * 1000,
    config.COLLECTOR_TOKEN_NEGATIVE_CACHE_S * 1000,
    limits.collector,
  );
  app.use(
    alarmBatchRouter({
      pool,
      db,
      outbox,
      admission: admission.middleware,
      asCollector,
      onAccepted: (changes) => accepted.inc(changes),
    }),
  );
  app.use(
    deviceInformsRouter({
      pool,
      db,
      outbox,
      admission: admission.middleware,
      asCollector,
      presence: { intervals: config.DEVICE_OFFLINE_INTERVALS, graceS: config.DEVICE_OFFLINE_GRACE_S },
      states: deviceStates,
      onAccepted: (n) => informsAccepted.inc(n),
      onSoftwareVersions: (changes) =>
        void confirmDownloads({ pool, outbox, live, policy: failurePolicy, log }, changes),
    }),
  );
  app.use(
    alarmsRouter({
      pool,
      db,
      outbox,
      jwtSecret: config.JWT_SECRET,
      admission: admission.middleware,
      asCollector,
      userLimits: limits.user,
      onAccepted: () => accepted.inc(),
    }),
  );
  const asUser = userAuth(pool, db, config.JWT_SECRET, limits.user);
  const taskRoutes = {
    pool,
    db,
    outbox,
    live,
    policy: failurePolicy,
    asCollector,
    asUser,
    admission: admission.middleware,
  };
  app.use(tasksRouter(taskRoutes));
  app.use(campaignsRouter(taskRoutes));
  app.use(preferencesRouter({ pool, db, asUser }));
  app.use(
    adminRouter({
      asUser,
      perIp: perIp(limits.userApiPerIp),
      redis,
      keys,
      queue,
      outboxBacklog: () => db(() => outboxBacklog(backgroundPool)),
      log,
    }),
  );
  // The user API's device reads, with the alarm API's user limits (the same limiter objects).
  app.use(deviceReadsRouter({ pool, db, asUser }));
  app.use(notFoundHandler);
  app.use(jsonErrorHandler(log));

  const server: Server = createServer(
    httpServerOptions({
      headersTimeoutMs: config.HTTP_HEADERS_TIMEOUT_MS,
      requestTimeoutMs: config.HTTP_REQUEST_TIMEOUT_MS,
    }),
    app,
  );
  // Keep-alive connections must not hold a drain open forever.
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.INGEST_PORT, config.HOST, resolve);
  });
  const internal =
    (options.internalServer ?? true)
      ? await startInternalServer({
          host: config.HOST,
          port: config.INGEST_INTERNAL_PORT,
          metrics,
          readiness,
        }).catch(async (err: unknown) => {
          server.close();
          throw err;
        })
      : undefined;
  outbox.start();
  stateFlusher.start();
  presence.start();
  tenantSummary.start();
  const pruner = startIdempotencyPruner(pool, log);
  if (config.jwtSecretDefaulted) {
    log.warn('JWT_SECRET not set: using the public development default (refused in production)');
  }
  const { port } = server.address() as AddressInfo;
  log.info({ port }, 'alarm-ingest listening');

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      const drained = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      await drained;
      await internal?.close();
      await live.stop();
      await presence.stop();
      deviceStates.stop();
      await tenantSummary.stop();
      await stateFlusher.stop();
      await outbox.stop();
      await pruner.stop();
      admission.stop();
      await queue.close();
      redis.disconnect();
      breaker.shutdown();
      await Promise.all([pool.end(), backgroundPool.end()]);
    })());

  return {
    port,
    url: `http://${config.HOST}:${port}`,
    internalUrl: internal?.url,
    outbox,
    live,
    metrics,
    readiness,
    routes: servedRoutes(app),
    presence,
    tenantSummary,
    close,
  };
}
