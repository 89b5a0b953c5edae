import type { ClusterNode } from '@alarmcast/redis';
import { DEV_JWT_SECRET, productionSecretProblem } from '@alarmcast/auth';
import { commonEnv, parseEnv, portVar, unsetIfEmpty, workersVar } from '@alarmcast/service';
import { parseTrustProxy, type TrustProxy } from '@alarmcast/http';
import { z } from 'zod';

/** Credentials a developer can use without configuring anything; refused in production. */
export const DEV_DEFAULTS = {
  PUSHER_APP_ID: 'alarmcast',
  PUSHER_APP_KEY: 'alarmcast-key',
  PUSHER_APP_SECRET: 'alarmcast-secret',
  JWT_SECRET: DEV_JWT_SECRET,
} as const;
type SecretVar = keyof typeof DEV_DEFAULTS;
const SECRET_VARS = Object.keys(DEV_DEFAULTS) as SecretVar[];

// Secrets have no default here: an unset one gets the development value, or, in production, an error.
const optional = <T extends z.ZodType>(schema: T) => unsetIfEmpty(schema.optional());

const limit = z.coerce.number().int().min(0).max(1_000_000);

const EdgeEnv = z.object({
  ...commonEnv,
  EDGE_PORT: portVar(6001),
  EDGE_INTERNAL_PORT: portVar(9101),
  EDGE_WORKERS: workersVar(),
  // The key is a URL path segment and the part of `auth` before the colon, so it may contain neither.
  PUSHER_APP_ID: optional(z.string().regex(/^[A-Za-z0-9_.-]{1,100}$/, 'use 1-100 of [A-Za-z0-9_.-]')),
  PUSHER_APP_KEY: optional(z.string().regex(/^[A-Za-z0-9_.-]{1,100}$/, 'use 1-100 of [A-Za-z0-9_.-]')),
  PUSHER_APP_SECRET: optional(z.string()),
  JWT_SECRET: optional(z.string()),
  ACTIVITY_TIMEOUT_S: optional(z.coerce.number().int().min(1).max(3600)),
  MAX_MESSAGE_BYTES: optional(z.coerce.number().int().min(512).max(1_048_576)),
  CORS_ORIGINS: optional(z.string()),
  TRUST_PROXY: optional(
    z.string().superRefine((v, ctx) => {
      try {
        parseTrustProxy(v);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
      }
    }),
  ),
  RATE_LIMIT_WINDOW_S: optional(z.coerce.number().int().min(1).max(3600)),
  RATE_LIMIT_CHANNEL_AUTH_PER_USER: optional(limit),
  RATE_LIMIT_CHANNEL_AUTH_PER_IP: optional(limit),
  RATE_LIMIT_AUTH_FAILURES_PER_IP: optional(limit),
  EDGE_MAX_CONNECTIONS_PER_IP: optional(limit),
  EDGE_MAX_CONNECTIONS_PER_USER: optional(limit),
  EDGE_SUBSCRIBE_TIMEOUT_S: optional(z.coerce.number().int().min(0).max(3600)),
  EDGE_DRAIN_SPREAD_S: optional(z.coerce.number().int().min(0).max(600)),
  HTTP_HEADERS_TIMEOUT_MS: optional(z.coerce.number().int().positive()),
  HTTP_REQUEST_TIMEOUT_MS: optional(z.coerce.number().int().positive()),
});

export interface EdgeConfig {
  nodeEnv: 'development' | 'test' | 'production';
  /** @defaultValue '127.0.0.1' */
  host: string;
  /** 0 picks a free port. @defaultValue 6001 (Reverb's and soketi's) */
  port: number;
  /** `/healthz`, `/readyz` and `/metrics`, kept off the public network; 0 picks a free port. @defaultValue 9101 */
  internalPort: number;
  /**
   * worker processes (`node:cluster`), each a whole edge; the primary listens and hands each connection to
   * the next one; 1: one process, no primary. @defaultValue os.availableParallelism()
   */
  workers: number;
  app: { id: string; key: string; secret: string };
  /** HS256 key of the user JWTs that /broadcasting/auth accepts */
  jwtSecret: string;
  /** @defaultValue 'postgresql://postgres@127.0.0.1:5432/alarmcast' */
  databaseUrl: string;
  /** @defaultValue 'redis://127.0.0.1:6379' */
  redisUrl: string;
  /** must match the publishers' prefix. @defaultValue 'ac' */
  redisPrefix: string;
  /** Redis Cluster seed nodes (`REDIS_CLUSTER_NODES`); empty: the single Redis at `redisUrl`. @defaultValue [] */
  redisClusterNodes: ClusterNode[];
  /** sent to clients in `connection_established`; also drives the server's idle check. @defaultValue 30 */
  activityTimeoutS: number;
  /** largest client frame handled; bigger ones get `pusher:error`. @defaultValue 10000 (Reverb's default) */
  maxMessageBytes: number;
  /** @defaultValue 'info' */
  logLevel: string;
  /**
   * Origins allowed to call /broadcasting/auth from a browser, or '*' (the default). Any origin is safe
   * enough here: the endpoint authenticates with a bearer token that a foreign page cannot read, never
   * with cookies, so CORS protects nothing an attacker could otherwise reach.
   */
  corsOrigins: '*' | string[];
  /** proxies allowed to name the client IP (X-Forwarded-For). @defaultValue false (the TCP peer is the client) */
  trustProxy: TrustProxy;
  /** limits shared by every edge through Redis; 0 turns one off */
  rateLimits: {
    /** @defaultValue 1 */
    windowS: number;
    /** POST /broadcasting/auth per user (JWT `sub`) per window. @defaultValue 20 */
    channelAuthPerUser: number;
    /** POST /broadcasting/auth per client IP per window. @defaultValue 200 */
    channelAuthPerIp: number;
    /** failed channel authentications (401) per client IP per minute. @defaultValue 100 */
    authFailuresPerIp: number;
  };
  /** caps on open sockets, per edge node; 0 turns one off */
  connectionCaps: {
    /** sockets from one client IP. @defaultValue 500 */
    perIp: number;
    /** sockets subscribed to one user's `private-user.{id}`. @defaultValue 32 */
    perUser: number;
  };
  /** a socket that has subscribed to nothing this long after connecting is closed (0: never). @defaultValue 30 */
  subscribeTimeoutS: number;
  /**
   * On shutdown, sockets are closed (4200, reconnect now) evenly over this many seconds instead of all at
   * once, so a drained node's clients do not all reconnect to the others in the same instant.
   * @defaultValue 0 (all at once)
   */
  drainSpreadS: number;
  /** slow-client limits of the HTTP server (WebSocket upgrades included) */
  httpTimeouts: { headersTimeoutMs: number; requestTimeoutMs: number };
  /** secret variables that were unset and got their local development value (never in production) */
  defaultsUsed: SecretVar[];
}

export { ConfigError } from '@alarmcast/service';

/** Production must not run on credentials that are printed in this repository, nor on guessable HMAC keys. */
function refineProduction(e: z.infer<typeof EdgeEnv>, ctx: z.RefinementCtx): void {
  if (e.NODE_ENV !== 'production') return;
  for (const name of SECRET_VARS) {
    const isHmacKey = name === 'PUSHER_APP_SECRET' || name === 'JWT_SECRET';
    const problem = productionSecretProblem(e[name], DEV_DEFAULTS[name], isHmacKey);
    if (problem) ctx.addIssue({ code: 'custom', path: [name], message: problem });
  }
}

const EdgeConfigSchema = EdgeEnv.superRefine(refineProduction).transform((e): EdgeConfig => {
  const secret = (name: SecretVar): string => e[name] ?? DEV_DEFAULTS[name];
  const cors = (e.CORS_ORIGINS ?? '*')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  return {
    nodeEnv: e.NODE_ENV,
    host: e.HOST,
    port: e.EDGE_PORT,
    internalPort: e.EDGE_INTERNAL_PORT,
    workers: e.EDGE_WORKERS,
    app: { id: secret('PUSHER_APP_ID'), key: secret('PUSHER_APP_KEY'), secret: secret('PUSHER_APP_SECRET') },
    jwtSecret: secret('JWT_SECRET'),
    databaseUrl: e.DATABASE_URL,
    redisUrl: e.REDIS_URL,
    redisPrefix: e.REDIS_PREFIX,
    redisClusterNodes: e.REDIS_CLUSTER_NODES,
    activityTimeoutS: e.ACTIVITY_TIMEOUT_S ?? 30,
    maxMessageBytes: e.MAX_MESSAGE_BYTES ?? 10_000,
    logLevel: e.LOG_LEVEL,
    corsOrigins: cors.length === 0 || cors.includes('*') ? '*' : cors,
    trustProxy: parseTrustProxy(e.TRUST_PROXY),
    rateLimits: {
      windowS: e.RATE_LIMIT_WINDOW_S ?? 1,
      channelAuthPerUser: e.RATE_LIMIT_CHANNEL_AUTH_PER_USER ?? 20,
      channelAuthPerIp: e.RATE_LIMIT_CHANNEL_AUTH_PER_IP ?? 200,
      authFailuresPerIp: e.RATE_LIMIT_AUTH_FAILURES_PER_IP ?? 100,
    },
    connectionCaps: {
      perIp: e.EDGE_MAX_CONNECTIONS_PER_IP ?? 500,
      perUser: e.EDGE_MAX_CONNECTIONS_PER_USER ?? 32,
    },
    subscribeTimeoutS: e.EDGE_SUBSCRIBE_TIMEOUT_S ?? 30,
    drainSpreadS: e.EDGE_DRAIN_SPREAD_S ?? 0,
    httpTimeouts: {
      headersTimeoutMs: e.HTTP_HEADERS_TIMEOUT_MS ?? 10_000,
      requestTimeoutMs: e.HTTP_REQUEST_TIMEOUT_MS ?? 30_000,
    },
    defaultsUsed: SECRET_VARS.filter((name) => e[name] === undefined),
  };
});

/**
 * Parses the edge's environment, once at boot. Throws a ConfigError listing each problem (the production
 * credential rules are checked once every variable is well-formed).
 */
export function parseEdgeConfig(env: NodeJS.ProcessEnv): EdgeConfig {
  return parseEnv('ws-edge', EdgeConfigSchema, env);
}
