import type { Queue } from 'bullmq';
import { broadcastJobs } from '@alarmcast/contracts';
import { claimRelayBatch, markEnqueued, type PgPool } from '@alarmcast/db';
import type { Logger } from '@alarmcast/observability';

/** Adds broadcast jobs for outbox events; the real one is a BullMQ queue's addBulk. */
export type EnqueueBroadcasts = (eventIds: string[]) => Promise<void>;

/** One job for a single event, one per BROADCAST_EVENTS_MAX events for a batch's or a relay round's. */
export function bullEnqueue(queue: Queue): EnqueueBroadcasts {
  return async (eventIds) => {
    await queue.addBulk(broadcastJobs(eventIds));
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
 * Gets committed outbox events onto the broadcast queue (the process side of packages/db `outbox.ts`,
 * which owns the statements).
 *
 * Fast path: right after the commit, the request hands its event to `dispatch`, which enqueues it and
 * records `enqueued_at` unless the event was broadcast meanwhile (recording is coalesced into one UPDATE per
 * `markEnqueued` delay; it is bookkeeping, not delivery).
 * Safety net: a relay picks up events older than the grace period that are neither broadcast nor marked
 * (the process died after the commit, Redis was away, the enqueue failed) and enqueues them, and events
 * enqueued more than `redeliverAfterMs` ago that the resolver has not marked `broadcast_at` (the job was
 * lost with Redis' data: a queued job is only as durable as Redis). The relay locks its rows with SKIP LOCKED, so any number of ingest processes can run it. Enqueueing twice is
 * harmless: the jobId is the event id, and the resolver delivers each event to each user once.
 */
export class OutboxDispatcher {
  private readonly toMark = new Set<string>();
  private markTimer: NodeJS.Timeout | undefined;
  /** see `markEnqueued` */
  private readonly markDelayMs: number;
  private relayTimer: NodeJS.Timeout | undefined;
  private relayRunning: Promise<void> | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  private stopped = false;

  constructor(
    private readonly pool: PgPool,
    private readonly enqueue: EnqueueBroadcasts,
    private readonly log: Logger,
    private readonly options: OutboxOptions,
  ) {
    this.markDelayMs = Math.min(500, options.relayGraceMs / 4);
  }

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

  /**
   * Called after the commit; `context` goes on the log line (the alarm's id, so that an alarm leads to its
   * event ids). Never throws: failure leaves the event to the relay.
   */
  dispatch(eventId: string, context: Record<string, unknown> = {}): void {
    const done = this.enqueue([eventId]).then(
      () => {
        // `eventId` is the field every service logs an event's progress under (README "Logs").
        this.log.info({ eventId, ...context }, 'event enqueued');
        this.markEnqueued(eventId);
      },
      (err: unknown) => this.log.warn({ err, eventId }, 'enqueue after commit failed; the relay will retry'),
    );
    this.inFlight.add(done);
    void done.finally(() => this.inFlight.delete(done));
  }

  /**
   * `dispatch` for the events of one commit (a batch): one enqueue call (one addBulk) for all of them.
   * Never throws: failure leaves the events to the relay.
   */
  dispatchMany(eventIds: readonly string[]): void {
    if (eventIds.length === 0) return;
    const ids = [...eventIds];
    const done = this.enqueue(ids).then(
      () => {
        for (const id of ids) {
          this.log.info({ eventId: id }, 'event enqueued');
          this.markEnqueued(id);
        }
      },
      (err: unknown) =>
        this.log.warn({ err, count: ids.length }, 'enqueue after commit failed; the relay will retry'),
    );
    this.inFlight.add(done);
    void done.finally(() => this.inFlight.delete(done));
  }

  /** One relay round; returns how many events it enqueued. */
  async relayOnce(): Promise<number> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      const ids = await claimRelayBatch(client, {
        graceMs: this.options.relayGraceMs,
        redeliverAfterMs: this.options.redeliverAfterMs,
        limit: this.options.relayBatch ?? 500,
      });
      if (ids.length > 0) {
        await this.enqueue(ids);
        await markEnqueued(client, ids);
        for (const id of ids) this.log.info({ eventId: id }, 'event enqueued by the outbox relay');
      }
      await client.query('COMMIT');
      return ids.length;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  /**
   * Marks wait a quarter of the relay's grace (at most 500 ms) before they are written: by then the
   * resolver has usually broadcast the event, which then needs no mark (packages/db `markEnqueued`), and
   * the relay still finds every event that waits longer marked before its grace runs out.
   */
  private markEnqueued(eventId: string): void {
    this.toMark.add(eventId);
    this.markTimer ??= setTimeout(() => void this.flushMarks(), this.markDelayMs);
  }

  /**
   * Records enqueued_at for dispatched events not broadcast yet; if it fails, the relay re-enqueues them (a
   * no-op).
   */
  async flushMarks(): Promise<void> {
    this.markTimer = undefined;
    if (this.toMark.size === 0) return;
    const ids = [...this.toMark];
    this.toMark.clear();
    await markEnqueued(this.pool, ids).catch((err: unknown) =>
      this.log.warn({ err, count: ids.length }, 'could not record enqueued_at'),
    );
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
