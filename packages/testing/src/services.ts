import { existsSync } from 'node:fs';

/** Where the test Postgres and Redis are: admin URL (a database we may CREATE DATABASE from) and Redis URL. */
export interface TestServices {
  postgresUrl: string;
  redisUrl: string;
  /** stops what was started for the run (containers); nothing for services found running */
  stop: () => Promise<void>;
}

const LOCAL_POSTGRES = 'postgresql://postgres@127.0.0.1:5432/postgres';
const LOCAL_REDIS = 'redis://127.0.0.1:6379';

/**
 * Chooses the services a test run uses, in this order:
 * 1. `DATABASE_URL` / `REDIS_URL` when given (CI, a developer's own services);
 * 2. containers through testcontainers, when a container runtime answers;
 * 3. the services on this machine at their standard ports.
 */
export async function resolveTestServices(env: NodeJS.ProcessEnv = process.env): Promise<TestServices> {
  if (env.DATABASE_URL && env.REDIS_URL) {
    return { postgresUrl: env.DATABASE_URL, redisUrl: env.REDIS_URL, stop: async () => undefined };
  }
  if (containerRuntimeLikely(env)) {
    const started = await startContainers().catch((err: unknown) => {
      console.warn(`testcontainers: no usable container runtime (${String(err)}); using local services`);
      return null;
    });
    if (started) return started;
  }
  return {
    postgresUrl: env.DATABASE_URL ?? LOCAL_POSTGRES,
    redisUrl: env.REDIS_URL ?? LOCAL_REDIS,
    stop: async () => undefined,
  };
}

function containerRuntimeLikely(env: NodeJS.ProcessEnv): boolean {
  if (env.ALARMCAST_TEST_CONTAINERS === '0') return false;
  // The docker *client* is installed on machines without an engine; only a socket or DOCKER_HOST says
  // that something may answer.
  return Boolean(env.DOCKER_HOST) || existsSync('/var/run/docker.sock');
}

async function startContainers(): Promise<TestServices> {
  const { getContainerRuntimeClient } = await import('testcontainers');
  await withTimeout(getContainerRuntimeClient(), 5000, 'container runtime did not answer');
  const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
  const { RedisContainer } = await import('@testcontainers/redis');
  const [pgc, redis] = await Promise.all([
    new PostgreSqlContainer('postgres:15-alpine').withDatabase('postgres').start(),
    new RedisContainer('redis:7-alpine')
      .withCommand(['redis-server', '--maxmemory-policy', 'noeviction', '--stream-node-max-bytes', '1024'])
      .start(),
  ]);
  return {
    postgresUrl: pgc.getConnectionUri(),
    redisUrl: redis.getConnectionUrl(),
    stop: async () => {
      await Promise.all([pgc.stop(), redis.stop()]);
    },
  };
}

async function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
