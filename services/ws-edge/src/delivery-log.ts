import type { Logger } from '@alarmcast/observability';

export interface DeliveryLogOptions {
  log: Logger;
  /** @defaultValue 250 ms: how long deliveries of one event are summed before its line is written */
  flushMs?: number;
  /** @defaultValue 10,000 events per flush; past it the rest are summed in one `events` count line */
  maxEventsPerFlush?: number;
}

/**
 * One `info` line per event per edge node, under the `eventId` field every service logs (the outbox event
 * id, carried as the envelope's `source`), so that one alarm can be followed from the ingest through the
 * resolver to the sockets it reached. An event for many users arrives as many pub/sub messages (one per
 * user, or one per batch); a line per message would multiply the edge's log by the audience, so the
 * messages of one event are summed for `flushMs` and written as one line with the sockets reached.
 */
export class DeliveryLog {
  private pending = new Map<string, { sockets: number; messages: number }>();
  private overflow = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly options: DeliveryLogOptions) {
    this.timer = setInterval(() => this.flush(), options.flushMs ?? 250);
    this.timer.unref();
  }

  record(source: string, sockets: number): void {
    const entry = this.pending.get(source);
    if (entry) {
      entry.sockets += sockets;
      entry.messages += 1;
    } else if (this.pending.size < (this.options.maxEventsPerFlush ?? 10_000)) {
      this.pending.set(source, { sockets, messages: 1 });
    } else {
      this.overflow += 1;
    }
  }

  flush(): void {
    if (this.pending.size === 0 && this.overflow === 0) return;
    const { log } = this.options;
    for (const [eventId, { sockets, messages }] of this.pending) {
      log.info({ eventId, sockets, messages }, 'event delivered to sockets');
    }
    if (this.overflow > 0) {
      log.warn(
        { messages: this.overflow },
        'delivery log over its per-flush limit: these messages were not logged',
      );
    }
    this.pending = new Map();
    this.overflow = 0;
  }

  close(): void {
    clearInterval(this.timer);
    this.flush();
  }
}
