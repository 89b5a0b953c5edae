import pg from 'pg';
import { z } from 'zod';
import type { Logger } from '@alarmcast/observability';

/** The Postgres channel the triggers of migration 20261201000000_access_change_notify notify on. */
export const ACCESS_CHANNEL = 'alarmcast_access';
/** `application_name` of the LISTEN session */
export const ACCESS_WATCHER_APPLICATION_NAME = 'ws-edge:access-watcher';

/**
 * A notification's payload, as the triggers write it; anything else is logged and dropped. `device` (a device
 * moved to another tenant, migration 20261202051500_device_status) names the device and no user.
 */
const AccessChange = z.union([
  z.object({
    user_id: z.number().int().min(1).max(2_147_483_647),
    change: z.enum(['active', 'tenant', 'deleted', 'share']),
    device_id: z.number().int().optional(),
  }),
  z.object({ change: z.literal('device'), device_id: z.number().int().min(1).max(2_147_483_647) }),
]);

export interface AccessWatcherOptions {
  databaseUrl: string;
  log: Logger;
  /** users whose access may have changed, one call per notification */
  onChange: (userIds: number[]) => void;
  /** a device moved to another tenant: whoever holds its channel is re-checked */
  onDeviceChange?: (deviceId: number) => void;
  /**
   * After every (re)connect, once LISTEN is in place: notifications sent while the connection was down are
   * lost (Postgres queues them only for listening sessions), so every local subscription must be re-checked.
   */
  onListening: () => void;
  /** @defaultValue 250 ms before the first reconnect, doubling up to 5 s */
  reconnectMs?: number;
  /**
   * A heartbeat on the LISTEN connection: a half-open TCP connection (a network partition, a failover that
   * kept the address) delivers no notifications and no error, and TCP keepalive would take minutes to see it.
   * A heartbeat unanswered within the same interval counts as a lost connection.
   * @defaultValue 5000 ms
   */
  heartbeatMs?: number;
}

/**
 * One dedicated Postgres connection per edge that LISTENs to `alarmcast_access`. Why this and not a
 * service fanning changes out through Redis: nothing new to deploy or to keep alive, Postgres already delivers
 * each notification to every listener at commit, and the cost is one idle connection per edge (tens of
 * edges are tens of connections, well within `max_connections`; the edge's pool already holds up to five).
 * A change made by the platform's own application straight into the tables is seen exactly like one made by
 * alarmcast, because the triggers, not the writers, announce it.
 */
export class AccessWatcher {
  private client: pg.Client | null = null;
  private closed = false;
  private connected = false;
  private attempt = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private readonly reconnectMs: number;
  private readonly heartbeatMs: number;

  constructor(private readonly options: AccessWatcherOptions) {
    this.reconnectMs = options.reconnectMs ?? 250;
    this.heartbeatMs = options.heartbeatMs ?? 5000;
  }

  /** Connects in the background; never throws (a Postgres that is away is retried). */
  start(): void {
    void this.connect();
  }

  /** Whether LISTEN is in place now, i.e. whether changes are being noticed. */
  get listening(): boolean {
    return this.connected;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    clearInterval(this.heartbeatTimer);
    const client = this.client;
    this.client = null;
    this.connected = false;
    await client?.end().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    const client = new pg.Client({
      connectionString: this.options.databaseUrl,
      keepAlive: true,
      // so an operator (or a test) can find this session in pg_stat_activity
      application_name: ACCESS_WATCHER_APPLICATION_NAME,
    });
    this.client = client;
    client.on('error', (err) => this.lost(client, err));
    client.on('end', () => this.lost(client, null));
    client.on('notification', (msg) => {
      if (msg.channel === ACCESS_CHANNEL) this.onNotification(msg.payload);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${ACCESS_CHANNEL}`);
    } catch (err) {
      this.lost(client, err);
      return;
    }
    if (this.client !== client) return;
    this.connected = true;
    this.attempt = 0;
    this.options.log.info('listening for access changes');
    this.heartbeatTimer = setInterval(() => this.heartbeat(client), this.heartbeatMs);
    this.heartbeatTimer.unref();
    this.options.onListening();
  }

  private heartbeat(client: pg.Client): void {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('heartbeat timed out')), this.heartbeatMs);
    });
    Promise.race([client.query('SELECT 1'), timeout])
      .catch((err: unknown) => this.lost(client, err))
      .finally(() => clearTimeout(timer));
  }

  /** Drops `client` (once) and schedules a new connection. */
  private lost(client: pg.Client, err: unknown): void {
    if (this.client !== client) return;
    this.client = null;
    this.connected = false;
    clearInterval(this.heartbeatTimer);
    client.removeAllListeners('notification');
    // A broken client may never answer end(); it is only let go of.
    client.on('error', () => undefined);
    void client.end().catch(() => undefined);
    if (this.closed) return;
    const wait = Math.min(this.reconnectMs * 2 ** this.attempt, 5000);
    this.attempt += 1;
    this.options.log.warn(
      { err: err instanceof Error ? err.message : err, retryInMs: wait },
      'access-change listener lost its connection; changes are re-checked in full once it is back',
    );
    this.reconnectTimer = setTimeout(() => void this.connect(), wait);
    this.reconnectTimer.unref();
  }

  private onNotification(payload: string | undefined): void {
    let json: unknown;
    try {
      json = JSON.parse(payload ?? '');
    } catch {
      json = null;
    }
    const change = AccessChange.safeParse(json);
    if (!change.success) {
      this.options.log.warn({ payload: payload?.slice(0, 200) }, 'dropped a malformed access notification');
      return;
    }
    if ('user_id' in change.data) this.options.onChange([change.data.user_id]);
    else this.options.onDeviceChange?.(change.data.device_id);
  }
}
