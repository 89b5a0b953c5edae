import PusherModule from 'pusher-js';
import {
  startIngest,
  parseIngestConfig,
  type IngestOptions,
  type IngestServer,
} from '@alarmcast/alarm-ingest';
import { startResolver, parseResolverConfig, type ResolverProcess } from '@alarmcast/recipient-resolver';
import { startEdge, parseEdgeConfig, type EdgeServer } from '@alarmcast/ws-edge';
import { signUserJwt } from '@alarmcast/auth';
import { userChannel } from '@alarmcast/contracts';

// pusher-js' node build is CommonJS (`module.exports = Pusher`) while its typings declare a default export.
export const Pusher = PusherModule as unknown as typeof PusherModule.default;
export type Pusher = InstanceType<typeof Pusher>;

export const APP = { id: 'e2e', key: 'e2e-key', secret: 'e2e-secret' };
export const JWT_SECRET = 'e2e-jwt-secret';

export interface StackOptions {
  databaseUrl: string;
  redisUrl: string;
  /**
   * Redis Cluster seed nodes (`REDIS_CLUSTER_NODES`, e.g. `RedisTopology.env.REDIS_CLUSTER_NODES`): when set,
   * every service runs on that cluster instead of `redisUrl`. @defaultValue none (single Redis)
   */
  redisClusterNodes?: string;
  redisPrefix: string;
  edges?: number;
  resolvers?: number;
  ingest?: IngestOptions;
  logLevel?: string;
  /** extra environment for every service */
  env?: Record<string, string>;
  /** extra node options for every spawned service (spawnStack only) */
  nodeArgs?: string[];
}

export interface Stack {
  ingest: IngestServer;
  edges: EdgeServer[];
  resolvers: ResolverProcess[];
  close: () => Promise<void>;
}

/** The three services, in this process, on free ports, sharing one database and one Redis prefix. */
export async function startStack(o: StackOptions): Promise<Stack> {
  const common = {
    DATABASE_URL: o.databaseUrl,
    REDIS_URL: o.redisUrl,
    ...(o.redisClusterNodes ? { REDIS_CLUSTER_NODES: o.redisClusterNodes } : {}),
    REDIS_PREFIX: o.redisPrefix,
    LOG_LEVEL: o.logLevel ?? 'silent',
    ...o.env,
  };
  const edges = await Promise.all(
    Array.from({ length: o.edges ?? 1 }, () =>
      startEdge(
        parseEdgeConfig({
          ...common,
          NODE_ENV: 'test',
          EDGE_PORT: '0',
          EDGE_INTERNAL_PORT: '0',
          PUSHER_APP_ID: APP.id,
          PUSHER_APP_KEY: APP.key,
          PUSHER_APP_SECRET: APP.secret,
          JWT_SECRET,
        }),
      ),
    ),
  );
  const resolvers = await Promise.all(
    Array.from({ length: o.resolvers ?? 1 }, () =>
      startResolver(parseResolverConfig({ ...common, RESOLVER_METRICS_PORT: '0' })),
    ),
  );
  const ingest = await startIngest(
    parseIngestConfig({
      ...common,
      INGEST_PORT: '0',
      INGEST_INTERNAL_PORT: '0',
      OUTBOX_RELAY_INTERVAL_MS: '200',
      OUTBOX_RELAY_GRACE_MS: '500',
      JWT_SECRET,
      PUSHER_APP_KEY: APP.key,
      CONSOLE_EDGE_URL: edges[0]!.url,
    }),
    o.ingest,
  );
  return {
    ingest,
    edges,
    resolvers,
    close: async () => {
      await ingest.close();
      await Promise.all(resolvers.map((r) => r.close()));
      await Promise.all(edges.map((e) => e.close()));
    },
  };
}

export interface ReceivedEvent {
  event: string;
  data: { alarm: { id: string; [k: string]: unknown }; event_id: string };
  at: number;
}

export interface UserClient {
  userId: number;
  pusher: Pusher;
  received: ReceivedEvent[];
  disconnect: () => void;
}

/**
 * A real pusher-js client for one user, authorized through /broadcasting/auth with the user's JWT and
 * subscribed to `private-user.{id}`; resolves once the subscription succeeded.
 */
export async function connectUser(
  edge: { port: number; url: string },
  userId: number,
  onEvent?: (e: ReceivedEvent) => void,
): Promise<UserClient> {
  const jwt = await signUserJwt(JWT_SECRET, userId);
  const pusher = new Pusher(APP.key, {
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
  const received: ReceivedEvent[] = [];
  const channel = pusher.subscribe(userChannel(userId));
  channel.bind_global((event: string, data: unknown) => {
    if (event.startsWith('pusher:') || event.startsWith('pusher_internal:')) return;
    const e = { event, data: data as ReceivedEvent['data'], at: performance.now() };
    received.push(e);
    onEvent?.(e);
  });
  await new Promise<void>((resolve, reject) => {
    channel.bind('pusher:subscription_succeeded', () => resolve());
    channel.bind('pusher:subscription_error', (err: unknown) =>
      reject(new Error(`subscription failed: ${JSON.stringify(err)}`)),
    );
  });
  return { userId, pusher, received, disconnect: () => pusher.disconnect() };
}

/**
 * POSTs a Major raise of a new alarm `<tag>-<n>` on `deviceId` and returns its id; fails the test unless the
 * ingest answers 202 (created).
 */
export async function raiseAlarm(
  ingestUrl: string,
  collectorToken: string,
  deviceId: number,
  tag: string,
  n: number,
): Promise<string> {
  const res = await fetch(`${ingestUrl}/v1/alarms`, {
    method: 'POST',
    headers: { authorization: `Bearer ${collectorToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      deviceId,
      alarmIdentifier: `${tag}-${n}`,
      eventType: 'Communications Alarm',
      probableCause: 'Loss of signal',
      specificProblem: `number ${n}`,
      perceivedSeverity: 'Major',
    }),
  });
  if (res.status !== 202) throw new Error(`POST /v1/alarms answered ${res.status}: ${await res.text()}`);
  return ((await res.json()) as { id: string }).id;
}
