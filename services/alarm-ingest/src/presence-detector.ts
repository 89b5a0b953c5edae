import { clearStrandedOfflineAlarms, detectOfflineDevices, type PgPool } from '@alarmcast/db';
import type { Logger } from '@alarmcast/observability';
import type { DeviceStatePublisher } from './device-state.js';
import type { OutboxDispatcher } from './outbox.js';

export interface PresenceDetectorOptions {
  /** pause between sweeps (a device is found offline at most this long after its deadline, plus the sweep) */
  intervalMs: number;
  /** devices per statement; a full batch is followed by another at once */
  batch: number;
  /** whether going offline raises the offline alarm where the tenant does not say */
  offlineAlarm: boolean;
  log: Logger;
  /** devices taken offline by this process */
  onOffline?: (devices: number) => void;
}

/**
 * The presence detector, in every ingest process: each sweep takes the online devices whose deadline has
 * passed offline (packages/db detectOfflineDevices: an index range over what is due, FOR UPDATE SKIP
 * LOCKED, so any number of processes sweep at once and never take a device twice), hands their offline
 * alarms to the outbox and their statuses to their channels, and clears offline alarms an inform could not.
 */
export class PresenceDetector {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly pool: PgPool,
    private readonly outbox: OutboxDispatcher,
    private readonly states: DeviceStatePublisher,
    private readonly options: PresenceDetectorOptions,
  ) {}

  start(): void {
    const tick = (): void => {
      if (this.stopped) return;
      this.running = this.sweep()
        .then(() => undefined)
        .catch((err: unknown) =>
          this.options.log.warn({ err }, 'presence sweep failed; retrying next interval'),
        )
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, this.options.intervalMs);
        });
    };
    this.timer = setTimeout(tick, this.options.intervalMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /** One sweep: every due device (batch after batch), then the stranded offline alarms. */
  async sweep(): Promise<number> {
    let total = 0;
    for (;;) {
      const { states, eventIds } = await detectOfflineDevices(
        this.pool,
        this.options.batch,
        this.options.offlineAlarm,
      );
      this.outbox.dispatchMany(eventIds);
      this.states.publish(states);
      total += states.length;
      if (states.length > 0) this.options.onOffline?.(states.length);
      if (states.length < this.options.batch || this.stopped) break;
    }
    const stranded = await clearStrandedOfflineAlarms(this.pool, this.options.batch);
    this.outbox.dispatchMany(stranded.eventIds);
    return total;
  }
}
