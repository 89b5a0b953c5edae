import { availableParallelism } from 'node:os';
import { z } from 'zod';
import { KEY_PART, parseClusterNodes, type ClusterNode } from '@alarmcast/redis';

/**
 * The environment variables every service reads, each defined once with its default and its rule, and the
 * one way services parse their environment: once at boot, every problem listed, nothing started on a bad
 * value. A variable set to the empty string (`REDIS_PREFIX=` in a .env file) counts as unset, so that it
 * gets its default or, in production, the "missing" error (never an empty HMAC key).
 */
export const unsetIfEmpty = <T extends z.ZodType>(schema: T) =>
  z.preprocess((v) => (typeof v === 'string' && v.trim() === '' ? undefined : v), schema);

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** A TCP port; 0 picks a free one (tests). */
export const portVar = (defaultPort: number) =>
  unsetIfEmpty(z.coerce.number().int().min(0).max(65_535).default(defaultPort));

/**
 * How many worker processes a service runs (`EDGE_WORKERS`, `INGEST_WORKERS`; see `runWorkers`): 1 to 1024,
 * 1 being a single process with no primary. Defaults to the cores this process may run on
 * (`os.availableParallelism()`), which in a container is the host's unless its CPU set is limited: set it
 * to the CPU limit there.
 */
export const workersVar = () =>
  unsetIfEmpty(z.coerce.number().int().min(1).max(1024).default(availableParallelism()));

export const commonEnv = {
  /** `production` requires real secrets. @defaultValue 'development' */
  NODE_ENV: unsetIfEmpty(z.enum(['development', 'test', 'production']).default('development')),
  /** interface to listen on. @defaultValue '127.0.0.1' */
  HOST: unsetIfEmpty(z.string().default('127.0.0.1')),
  /** pino level. @defaultValue 'info' */
  LOG_LEVEL: unsetIfEmpty(z.enum(LOG_LEVELS).default('info')),
  /** @defaultValue 'postgresql://postgres@127.0.0.1:5432/alarmcast' */
  DATABASE_URL: unsetIfEmpty(
    z.url({ protocol: /^postgres(ql)?$/ }).default('postgresql://postgres@127.0.0.1:5432/alarmcast'),
  ),
  /** queues, event logs, pub/sub; needs `maxmemory-policy noeviction`. @defaultValue 'redis://127.0.0.1:6379' */
  REDIS_URL: unsetIfEmpty(z.url({ protocol: /^rediss?$/ }).default('redis://127.0.0.1:6379')),
  /**
   * Redis Cluster seed nodes, `host:port,host:port,...`: when set, every service uses the cluster (keys by
   * hash tag, sharded pub/sub) and REDIS_URL is not used; empty (the default): the single Redis at REDIS_URL.
   * @defaultValue '' (no cluster)
   */
  REDIS_CLUSTER_NODES: z
    .string()
    .default('')
    .transform((list, ctx): ClusterNode[] => {
      try {
        return parseClusterNodes(list);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: `${(err as Error).message}: use host:port,host:port` });
        return z.NEVER;
      }
    }),
  /**
   * prefix of every Redis key, so deployments (and tests) can share a Redis; must match across services.
   * RedisKeys' own rule, checked here so that a bad prefix fails at boot. @defaultValue 'ac'
   */
  REDIS_PREFIX: unsetIfEmpty(z.string().regex(KEY_PART, 'use 1-64 of [A-Za-z0-9_.-]').default('ac')),
} as const;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/**
 * Parses `env` with `schema`; throws a ConfigError naming the service and listing every problem, one line
 * (` (refusing to start in production)` when NODE_ENV says so).
 */
export function parseEnv<S extends z.ZodType>(
  service: string,
  schema: S,
  env: NodeJS.ProcessEnv,
): z.infer<S> {
  const parsed = schema.safeParse(env);
  if (parsed.success) return parsed.data as z.infer<S>;
  const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(environment)'}: ${i.message}`);
  const refusing = env.NODE_ENV === 'production' ? ' (refusing to start in production)' : '';
  throw new ConfigError(`${service}: invalid environment${refusing}: ${problems.join('; ')}`);
}
