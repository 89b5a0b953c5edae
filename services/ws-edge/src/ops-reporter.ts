import {
  EDGE_STATUS_INTERVAL_MS,
  OPS_EVENTS_KEPT,
  type EdgeStatus,
  type OpsEvent,
} from '@alarmcast/contracts';
import type { Logger } from '@alarmcast/observability';
import type { RedisConnection, RedisKeys } from '@alarmcast/redis';

export interface OpsReporterOptions {
  redis: RedisConnection;
  keys: RedisKeys;
  node: string;
  log: Logger;
  /** this node's state now */
  status: () => Omit<EdgeStatus, 'node' | 'at'>;
  /** @defaultValue EDGE_STATUS_INTERVAL_MS (2 s) */
  intervalMs?: number;
}

/**
 * What the operator view (GET /v1/admin/status, the console's cluster page) knows of this edge: its status
 * in the `opsEdges` hash, rewritten every interval, and its resume failures and revocations pushed to the
 * capped `opsEvents` list. Through Redis, which every edge and ingest already share, so the ingest needs no
 * list of edge addresses (pods come and go) and no internal port is ever exposed. Best effort: a write that
 * fails (Redis away) is dropped, never retried or queued.
 */
export class OpsReporter {
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly options: OpsReporterOptions) {
    this.timer = setInterval(() => this.report(), options.intervalMs ?? EDGE_STATUS_INTERVAL_MS);
    this.timer.unref();
    this.report();
  }

  report(): void {
    const status: EdgeStatus = { node: this.options.node, at: Date.now(), ...this.options.status() };
    this.options.redis
      .hset(this.options.keys.opsEdges, this.options.node, JSON.stringify(status))
      .catch((err: unknown) => this.options.log.debug({ err }, 'could not write the edge status'));
  }

  record(kind: OpsEvent['kind'], reason: string, userId: number): void {
    const event: OpsEvent = { at: Date.now(), node: this.options.node, kind, reason, userId };
    const key = this.options.keys.opsEvents;
    this.options.redis
      .multi()
      .lpush(key, JSON.stringify(event))
      .ltrim(key, 0, OPS_EVENTS_KEPT - 1)
      .exec()
      .catch((err: unknown) => this.options.log.debug({ err }, 'could not record an operator event'));
  }

  /** Stops reporting and removes this edge from the hash (it is leaving). */
  async close(): Promise<void> {
    clearInterval(this.timer);
    // Only on a connection that is up: queued on one that is not, HDEL would wait out every reconnect
    // attempt (~30 s) and hold the drain. An entry left behind ages out of the cluster page by itself.
    if (this.options.redis.status !== 'ready') return;
    await this.options.redis.hdel(this.options.keys.opsEdges, this.options.node).catch(() => undefined);
  }
}
