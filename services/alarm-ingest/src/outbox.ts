import type { Queue } from 'bullmq';
import { JOB_CATALOGUE, broadcastJobId } from '@alarmcast/contracts';
import { lockInIdOrder, type PgPool } from '@alarmcast/db';
import type { Logger } from '@alarmcast/observability';

/** Adds broadcast jobs for outbox events; the real one is a BullMQ queue's addBulk. */
// Rows locked in id order: the resolver marks overlapping batches at the same time (see lockInIdOrder).
const MARK_ENQUEUED = `UPDATE outbox_events o SET enqueued_at = now() FROM (${lockInIdOrder()}) l WHERE o.id = l.id`;

export type EnqueueBroadcasts = (eventIds: string[]) => Promise<void>;

export function bullEnqueue(queue: Queue): EnqueueBroadcasts {
  const { options } = JOB_CATALOGUE.BroadcastAlarmToTenant;
  return async (eventIds) => {
    await queue.addBulk(
      eventIds.map((eventId) => ({
        name: 'BroadcastAlarmToTenant',
        data: { eventId },
        opts: { ...options, jobId: broadcastJobId(eventId) },
      })),
    );
  };
}

export interface OutboxOptions {
  relayIntervalMs: number;
  relayGraceMs: number;
  /**
   * An event enqueued this long ago and still not broadcast is enqueued again: its job was lost (Redis
   * restarted without its data). While the job still exists, re-adding its jobId is a no-op; the resolver's
   * per-event delivery marks keep a second run from repeating anyone, so this must stay below
   * DELIVERED_TTL_S.
   */
  redeliverAfterMs: number;
  /** @defaultValue 500 events per relay round */
  relayBatch?: number;
}

/**
 * Gets committed outbox events onto the broadcast queue.
 *
 * Fast path: right after the commit, the request hands its event to `dispatch`, which enqueues it and
 * records `enqueued_at` (recording is coalesced into one UPDATE per tick; it is bookkeeping, not delivery).
 * Safety net: a relay picks up events older than the grace period that still have no `enqueued_at`
 * (the process died after the commit, Redis was away, the enqueue failed) and enqueues them, and events
 * enqueued more than `redeliverAfterMs` ago that the resolver has not marked `broadcast_at` (the job was
 * lost with Redis' data: a queued job is only as durable as Redis). The relay locks its rows with SKIP LOCKED, so any number of ingest processes can run it. Enqueueing twice is
 * harmless: the jobId is the event id, and the resolver delivers each event to each user once.
 */
export class OutboxDispatcher {
  private readonly toMark = new Set<string>();
  private markTimer: NodeJS.Timeout | undefined;
  private relayTimer: NodeJS.Timeout | undefined;
  private relayRunning: Promise<void> | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  private stopped = false;

  constructor(
    private readonly pool: PgPool,
    private readonly enqueue: EnqueueBroadcasts,
    private readonly log: Logger,
    private readonly options: OutboxOptions,
  ) {}

  start(): void {
    this.relayTimer = setInterval(() => {
      if (!this.relayRunning) {
        this.relayRunning = this.relayOnce()
          .then(
            () => undefined,
            (err: unknown) => this.log.warn({ err }, 'outbox relay round failed; retrying next round'),
          )
          .finally(() => (this.relayRunning = undefined));
      }
    }, this.options.relayIntervalMs);
    this.relayTimer.unref();
  }

  /** Called after the commit. Never throws: failure leaves the event to the relay. */
  dispatch(eventId: string): void {
    const done = this.enqueue([eventId]).then(
      () => this.markEnqueued(eventId),
      (err: unknown) => this.log.warn({ err, eventId }, 'enqueue after commit failed; the relay will retry'),
    );
    this.inFlight.add(done);
    void done.finally(() => this.inFlight.delete(done));
  }

  /** One relay round; returns how many events it enqueued. */
  async relayOnce(): Promise<number> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      const { rows } = await client.query<{ id: string }>({
        name: 'outbox_relay_claim',
        text: `SELECT id FROM outbox_events
                WHERE broadcast_at IS NULL
                  AND ((enqueued_at IS NULL AND created_at < now() - make_interval(secs => $1))
                    OR enqueued_at < now() - make_interval(secs => $3))
                ORDER BY id LIMIT $2
                FOR UPDATE SKIP LOCKED`,
        values: [
          this.options.relayGraceMs / 1000,
          this.options.relayBatch ?? 500,
          this.options.redeliverAfterMs / 1000,
        ],
      });
      if (rows.length > 0) {
        const ids = rows.map((r) => String(r.id));
        await this.enqueue(ids);
        await client.query({ name: 'outbox_mark', text: MARK_ENQUEUED, values: [ids] });
        this.log.info({ count: ids.length }, 'outbox relay enqueued events');
      }
      await client.query('COMMIT');
      return rows.length;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  private markEnqueued(eventId: string): void {
    this.toMark.add(eventId);
    this.markTimer ??= setTimeout(() => void this.flushMarks(), 20);
  }

  /** Records enqueued_at for dispatched events; if it fails, the relay re-enqueues them (a no-op). */
  async flushMarks(): Promise<void> {
    this.markTimer = undefined;
    if (this.toMark.size === 0) return;
    const ids = [...this.toMark];
    this.toMark.clear();
    await this.pool
      .query({ name: 'outbox_mark', text: MARK_ENQUEUED, values: [ids] })
      .catch((err: unknown) => this.log.warn({ err, count: ids.length }, 'could not record enqueued_at'));
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.relayTimer);
    clearTimeout(this.markTimer);
    await Promise.all([this.relayRunning, ...this.inFlight]);
    await this.flushMarks();
  }
}
