import { Router, type RequestHandler } from 'express';
import type { Queue } from 'bullmq';
import {
  ROUTES,
  expressPath,
  EDGE_STATUS_INTERVAL_MS,
  EdgeStatus,
  OpsEvent,
  type AdminStatusResponse,
} from '@alarmcast/contracts';
import type { OutboxBacklog } from '@alarmcast/db';
import { ApiError } from '@alarmcast/http';
import type { Logger } from '@alarmcast/observability';
import type { RedisConnection, RedisKeys } from '@alarmcast/redis';
import { roleOf } from './user-auth.js';

export interface AdminRouteOptions {
  /** userAuth with the user API's limits */
  asUser: RequestHandler;
  perIp: RequestHandler;
  redis: RedisConnection;
  keys: RedisKeys;
  queue: Queue;
  outboxBacklog: () => Promise<OutboxBacklog>;
  log: Logger;
}

/** Recent operator events in one answer (the list keeps OPS_EVENTS_KEPT). */
const RECENT_EVENTS = 50;

/**
 * `GET /v1/admin/status`: the live cluster state for the console's cluster page, platform admins only
 * (`users.role = 'platform_admin'`; any other user gets 403 `forbidden`, a bad JWT 401). Each part is read
 * from the service that owns it: the edges' own reports (each edge writes its status into Redis every 2 s,
 * `ops-reporter.ts`; entries older than three intervals are left out and removed), the broadcast queue
 * through BullMQ, the outbox through Postgres, and the edges' recent resume failures and revocations. So
 * the ingest needs no addresses of edges (pods come and go) and no internal port is exposed.
 */
export function adminRouter(options: AdminRouteOptions): Router {
  const router = Router();
  const { redis, keys, queue } = options;

  router.get(expressPath(ROUTES.adminStatus), options.perIp, options.asUser, async (_req, res) => {
    if (roleOf(res) !== 'platform_admin') {
      throw new ApiError('forbidden', 'the cluster status is for platform admins only');
    }
    const now = Date.now();
    const [edgeFields, eventLines, counts, oldest, outbox] = await Promise.all([
      redis.hgetall(keys.opsEdges),
      redis.lrange(keys.opsEvents, 0, RECENT_EVENTS - 1),
      queue.getJobCounts('waiting', 'active', 'delayed', 'failed'),
      // BullMQ's wait list takes new jobs at its head: the oldest is the last one.
      queue.getJobs(['wait'], -1, -1),
      options.outboxBacklog(),
    ]).catch((err: unknown) => {
      options.log.warn({ err }, 'could not read the cluster status');
      throw new ApiError(
        'service_unavailable',
        'the cluster status could not be read (Redis or Postgres away)',
      );
    });
    const edges: AdminStatusResponse['edges'] = [];
    const stale: string[] = [];
    for (const [node, json] of Object.entries(edgeFields)) {
      const parsed = EdgeStatus.safeParse(safeJson(json));
      if (parsed.success && now - parsed.data.at <= 3 * EDGE_STATUS_INTERVAL_MS) edges.push(parsed.data);
      else stale.push(node);
    }
    // An edge that stopped without removing itself (killed) is forgotten by the first reader after it.
    if (stale.length > 0) void redis.hdel(keys.opsEdges, ...stale).catch(() => undefined);
    const recent = eventLines.flatMap((line) => {
      const parsed = OpsEvent.safeParse(safeJson(line));
      return parsed.success ? [parsed.data] : [];
    });
    const oldestJob = oldest[0];
    const body: AdminStatusResponse = {
      at: now,
      edges: edges.sort((a, b) => a.node.localeCompare(b.node)),
      queue: {
        waiting: counts.waiting ?? 0,
        active: counts.active ?? 0,
        delayed: counts.delayed ?? 0,
        failed: counts.failed ?? 0,
        oldestWaitingAgeS: oldestJob ? Math.max(0, (now - oldestJob.timestamp) / 1000) : 0,
      },
      outbox: { pending: outbox.pending, oldestPendingAgeS: outbox.oldestPendingAgeS },
      recent,
    };
    res.status(200).json(body);
  });
  return router;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
