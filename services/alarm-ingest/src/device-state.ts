import { STATE_EVENT_CATALOGUE } from '@alarmcast/contracts';
import { tenantDeviceCounts, type DeviceStateRow, type PgPool } from '@alarmcast/db';
import type { Logger } from '@alarmcast/observability';
import type { StateChannelWriter, StateUpdate } from '@alarmcast/redis';

const DEVICE = STATE_EVENT_CATALOGUE['device.status'];
const SUMMARY = STATE_EVENT_CATALOGUE['tenant.device-summary'];

/**
 * The ingest's side of device state channels: statuses the inform and presence statements changed go to
 * `private-device.{id}` (packages/redis state-channel.ts conflates them to one event per device per
 * `minIntervalMs`), and tenants whose online/offline counts moved get a fresh TenantDeviceSummary.
 */
export class DeviceStatePublisher {
  /**
   * Statuses whose write failed (Redis away), newest version per channel, written again every
   * RETRY_MS until one succeeds. An inform's status would be healed by the device's next inform, but an
   * offline device sends none: without this, a device taken offline while Redis was away would stay online
   * on its channel until it informed again. At most MAX_RETRY_CHANNELS are kept (past that the oldest are
   * dropped, logged as an error); a dropped one is missing from its channel until the device's next inform.
   */
  private readonly failed = new Map<string, StateUpdate>();
  private retryTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly writer: StateChannelWriter,
    private readonly summary: TenantSummary,
    private readonly options: { minIntervalMs: number; log: Logger; onError?: () => void },
  ) {}

  /** Never rejects: a failed write is logged, counted and retried (newest version per channel). */
  publish(rows: readonly DeviceStateRow[]): void {
    if (rows.length === 0) return;
    const updates: StateUpdate[] = rows.map((r) => ({
      channel: DEVICE.channel(r.deviceId),
      event: DEVICE.wireName,
      root: DEVICE.root,
      version: r.version,
      state: r.state,
      changed: r.changed,
      minIntervalMs: this.options.minIntervalMs,
    }));
    this.summary.changed(rows.filter((r) => r.presenceChanged).map((r) => r.tenantId));
    this.write(updates);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
  }

  private write(updates: StateUpdate[]): void {
    this.writer.write(updates).catch((err: unknown) => {
      this.options.onError?.();
      this.options.log.warn(
        { err, devices: updates.length },
        'could not write device states to Redis; retrying',
      );
      for (const u of updates) {
        const kept = this.failed.get(u.channel);
        // A newer status may have been written (or failed) meanwhile: the script refuses older versions
        // anyway, this only keeps the retry from sending them.
        if (kept && BigInt(kept.version) >= BigInt(u.version)) continue;
        this.failed.delete(u.channel);
        this.failed.set(u.channel, u);
      }
      let dropped = 0;
      for (const channel of this.failed.keys()) {
        if (this.failed.size <= MAX_RETRY_CHANNELS) break;
        this.failed.delete(channel);
        dropped += 1;
      }
      if (dropped > 0) this.options.log.error({ dropped }, 'device states dropped from the Redis retry');
      this.scheduleRetry();
    });
  }

  private scheduleRetry(): void {
    if (this.stopped || this.retryTimer !== undefined || this.failed.size === 0) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      const again = [...this.failed.values()];
      this.failed.clear();
      this.write(again);
    }, RETRY_MS);
    this.retryTimer.unref();
  }
}

const RETRY_MS = 1000;
const MAX_RETRY_CHANNELS = 100_000;

/**
 * Tenant summaries: at start every tenant with devices, then the tenants whose devices changed presence, are counted (one grouped query for all of them)
 * every `intervalMs` and their summary written to `private-tenant.{id}` with the same interval as the
 * conflation window, so that whatever the number of ingest processes a tenant gets at most one summary per
 * interval (the state script decides across processes; the count's time is its version, the newest wins).
 */
export class TenantSummary {
  private dirty = new Set<number>();
  /** the first flush counts every tenant, so summaries (and their snapshots) exist from the start */
  private all = true;
  private readonly last = new Map<number, string>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly pool: PgPool,
    private readonly writer: StateChannelWriter,
    private readonly options: { intervalMs: number; log: Logger },
  ) {}

  changed(tenantIds: readonly number[]): void {
    for (const id of tenantIds) this.dirty.add(id);
  }

  start(): void {
    const tick = (): void => {
      if (this.stopped) return;
      this.running = this.flush()
        .catch((err: unknown) => this.options.log.warn({ err }, 'could not publish tenant summaries'))
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

  /** Counts the tenants marked since the last flush and writes their summaries. */
  async flush(): Promise<void> {
    if (this.dirty.size === 0 && !this.all) return;
    const tenants = [...this.dirty];
    this.dirty = new Set();
    const all = this.all;
    this.all = false;
    let counts: Awaited<ReturnType<typeof tenantDeviceCounts>>;
    // What failed (Postgres or Redis away, or not connected yet at start) is counted again next time.
    const retry = (): void => {
      for (const id of tenants) this.dirty.add(id);
      if (all) this.all = true;
    };
    try {
      counts = await tenantDeviceCounts(this.pool, all ? 'all' : tenants);
    } catch (err) {
      retry();
      throw err;
    }
    const now = Date.now();
    const written: [number, string][] = [];
    const updates: StateUpdate[] = [];
    for (const [tenantId, c] of counts) {
      const previous = this.last.get(tenantId);
      const key = `${c.online}/${c.offline}/${c.total}`;
      if (previous === key) continue;
      const [po, pf, pt] = (previous ?? '-1/-1/-1').split('/').map(Number);
      const changed = [
        ...(po !== c.online ? ['online'] : []),
        ...(pf !== c.offline ? ['offline'] : []),
        ...(pt !== c.total ? ['total'] : []),
      ];
      written.push([tenantId, key]);
      updates.push({
        channel: SUMMARY.channel(tenantId),
        event: SUMMARY.wireName,
        root: SUMMARY.root,
        version: String(now),
        state: JSON.stringify({
          tenant_id: tenantId,
          online: c.online,
          offline: c.offline,
          total: c.total,
          counted_at: new Date(now).toISOString(),
        }),
        changed,
        minIntervalMs: this.options.intervalMs,
      });
    }
    if (updates.length > 0) {
      try {
        await this.writer.write(updates);
      } catch (err) {
        retry();
        for (const [tenantId] of written) this.dirty.add(tenantId);
        throw err;
      }
    }
    if (this.last.size > 100_000) this.last.clear();
    for (const [tenantId, key] of written) this.last.set(tenantId, key);
  }
}
