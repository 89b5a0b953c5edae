import PusherModule from 'pusher-js';

// pusher-js' typings declare a default export that NodeNext resolution sees as the module object.
const Pusher = PusherModule as unknown as typeof PusherModule.default;
type Pusher = InstanceType<typeof Pusher>;

/** Mirrors packages/contracts/src/resume.ts (the SDK ships without the server's packages). */
const RESUME_FIELD = 'last_event_id';
const RESUME_FAILED_EVENT = 'alarmcast:resume_failed';
/** The `reason` of a resync the SDK decides itself: resubscribed with no position to resume from. */
export const NO_POSITION = 'no_position';

export type AlarmEventType = 'created' | 'updated' | 'cleared' | 'acknowledged';
const EVENT_TYPES: Record<string, AlarmEventType> = {
  'App\\Events\\AlarmCreated': 'created',
  'App\\Events\\AlarmUpdated': 'updated',
  'App\\Events\\AlarmCleared': 'cleared',
  'App\\Events\\AlarmAcknowledged': 'acknowledged',
};

/** An alarm in the wire shape (snake_case); fields beyond these are passed through. */
export interface Alarm {
  id: string;
  tenant_id: number;
  device_id: number | null;
  alarm_identifier: string;
  perceived_severity: string;
  [field: string]: unknown;
}

export interface AlarmEvent {
  type: AlarmEventType;
  alarm: Alarm;
  /** position in the user's event log */
  eventId: string;
}

export type ConnectionState = 'connecting' | 'live' | 'reconnecting' | 'offline';

/** The state reloaded through `GET /v1/alarms` after the server could not replay what was missed. */
export interface ResyncEvent {
  /** the `reason` of `alarmcast:resume_failed` (`log_recreated`, `log_trimmed`, `unknown_position`, ...) */
  reason: string;
  /** every alarm `reloadQuery` selects, as `GET /v1/alarms` lists them (all pages) */
  alarms: Alarm[];
}

export interface AlarmcastClientOptions {
  /** Pusher app key */
  key: string;
  wsHost: string;
  wsPort: number;
  /** @defaultValue false */
  forceTLS?: boolean;
  /** the edge's /broadcasting/auth */
  authEndpoint: string;
  /** the user's bearer JWT */
  token: string;
  userId: number;
  /**
   * Where the last seen event id is kept across page loads (e.g. localStorage); without it, only across
   * reconnects of this client.
   */
  store?: { get(key: string): string | null; set(key: string, value: string): void };
  /** @defaultValue 1000 ms, doubled per failed attempt up to maxBackoffMs, with jitter */
  minBackoffMs?: number;
  /** @defaultValue 30000 ms */
  maxBackoffMs?: number;
  /**
   * Base URL of alarm-ingest's user API. With it, the SDK reloads by itself when the server cannot replay
   * what was missed (`alarmcast:resume_failed`): it pages through `GET {apiUrl}/v1/alarms?{reloadQuery}`
   * with `token`, retrying with the backoff above until it succeeds, and emits `resync` with the alarms;
   * `alarm` events that arrive meanwhile are held and emitted after `resync`. Without it, only
   * `resyncRequired` is emitted and the application reloads.
   */
  apiUrl?: string;
  /** the query of the reload, as `GET /v1/alarms` takes it @defaultValue 'state=active' (limit 500 per page) */
  reloadQuery?: string;
}

type Listener<T> = (value: T) => void;

/** How many recent event ids are remembered to drop repeats: far more than one burst of replay overlap. */
const SEEN_IDS = 1000;

/**
 * A user's alarm stream over pusher-js: typed events, resume from the last event id after any reconnect
 * (sent as an extra field of `pusher:subscribe`, which the edge honours and legacy servers ignore),
 * duplicate suppression, and reconnection with capped exponential backoff where pusher-js would give up
 * or wait long.
 */
export class AlarmcastClient {
  private readonly pusher: Pusher;
  private readonly channelName: string;
  private lastEventId: string | null;
  private readonly listeners = {
    alarm: new Set<Listener<AlarmEvent>>(),
    state: new Set<Listener<ConnectionState>>(),
    resyncRequired: new Set<Listener<{ reason: string }>>(),
    resync: new Set<Listener<ResyncEvent>>(),
  };
  /** a reload through the API is running; `alarm` events wait in `held` until it has been emitted */
  private reloading = false;
  /** another resume_failed came during the reload: its answer may predate what that one missed */
  private reloadAgain = false;
  private held: AlarmEvent[] = [];
  /** the channel was subscribed before: a later subscription_succeeded is a resubscription */
  private subscribedOnce = false;
  /** the last SEEN_IDS event ids received, oldest first, to drop repeats */
  private readonly seen = new Set<string>();
  private reloadTimer: ReturnType<typeof setTimeout> | undefined;
  private wakeReload: (() => void) | undefined;
  private attempts = 0;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  /** set while we restart pusher-js ourselves, so its own "disconnected" does not schedule another */
  private restarting = false;
  private closed = false;

  constructor(private readonly options: AlarmcastClientOptions) {
    this.channelName = `private-user.${options.userId}`;
    this.lastEventId = options.store?.get(this.storeKey) ?? null;
    this.pusher = new Pusher(options.key, {
      cluster: 'mt1',
      wsHost: options.wsHost,
      wsPort: options.wsPort,
      wssPort: options.wsPort,
      forceTLS: options.forceTLS ?? false,
      enabledTransports: ['ws', 'wss'],
      disableStats: true,
      channelAuthorization: {
        endpoint: options.authEndpoint,
        transport: 'ajax',
        headers: { Authorization: `Bearer ${options.token}` },
      },
    });
    this.injectResumePosition();
    this.pusher.connection.bind('state_change', ({ current }: { current: string }) => this.onState(current));
    const channel = this.pusher.subscribe(this.channelName);
    channel.bind_global((event: string, data: unknown) => this.onEvent(event, data));
  }

  private get storeKey(): string {
    return `alarmcast.last_event_id.${this.options.userId}`;
  }

  /** The last event id seen, or null before the first event. */
  get position(): string | null {
    return this.lastEventId;
  }

  on(event: 'alarm', listener: Listener<AlarmEvent>): () => void;
  on(event: 'state', listener: Listener<ConnectionState>): () => void;
  /** The server could not replay what was missed: reload state (e.g. GET /v1/alarms). */
  on(event: 'resyncRequired', listener: Listener<{ reason: string }>): () => void;
  /** With `apiUrl`: the state reloaded after `resyncRequired`, before the `alarm` events that followed it. */
  on(event: 'resync', listener: Listener<ResyncEvent>): () => void;
  on(event: keyof AlarmcastClient['listeners'], listener: Listener<never>): () => void {
    const set = this.listeners[event] as Set<Listener<never>>;
    set.add(listener);
    return () => set.delete(listener);
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.reloadTimer);
    this.wakeReload?.();
    this.pusher.disconnect();
  }

  /**
   * pusher-js builds `pusher:subscribe` itself (after channel authorization) and sends it on every
   * (re)connect; adding the resume position at that one place covers all of them.
   */
  private injectResumePosition(): void {
    const send = this.pusher.send_event.bind(this.pusher);
    this.pusher.send_event = (name: string, data: unknown, channel?: string) => {
      if (
        name === 'pusher:subscribe' &&
        this.lastEventId &&
        isRecord(data) &&
        data.channel === this.channelName
      ) {
        return send(name, { ...data, [RESUME_FIELD]: this.lastEventId }, channel);
      }
      return send(name, data, channel);
    };
  }

  private onEvent(event: string, data: unknown): void {
    if (event === 'pusher:subscription_succeeded') {
      // Resubscribed without a position (no event yet, or none since the last resync): nothing was asked
      // to be replayed, so whatever was published while we were away would be missing without a word.
      const unresumable = this.subscribedOnce && this.lastEventId === null;
      this.subscribedOnce = true;
      if (unresumable) this.resyncRequired(NO_POSITION);
      return;
    }
    if (event === RESUME_FAILED_EVENT) {
      const reason = isRecord(data) && typeof data.reason === 'string' ? data.reason : 'unknown';
      // The position is not one of this log's: forget it, so that the events that follow (what the log
      // still holds, then live ones; the edge says this first) set it again from the log we are on.
      this.setPosition(null);
      this.resyncRequired(reason);
      return;
    }
    const type = EVENT_TYPES[event];
    if (!type || !isRecord(data) || !isRecord(data.alarm) || typeof data.event_id !== 'string') return;
    // Replay and live delivery never overlap on our edge; this guards against any server that repeats. Only
    // ids already seen are dropped, not everything at or below the position: a log recreated on a Redis
    // whose clock went back has lower ids, and dropping those would silence this client for good.
    if (this.seen.has(data.event_id)) return;
    this.seen.add(data.event_id);
    if (this.seen.size > SEEN_IDS) this.seen.delete(this.seen.values().next().value!);
    this.setPosition(data.event_id);
    const e: AlarmEvent = { type, alarm: data.alarm as Alarm, eventId: data.event_id };
    if (this.reloading) {
      this.held.push(e);
      return;
    }
    for (const l of this.listeners.alarm) l(e);
  }

  private resyncRequired(reason: string): void {
    for (const l of this.listeners.resyncRequired) l({ reason });
    if (this.options.apiUrl !== undefined) void this.reload(reason);
  }

  /**
   * Reloads through the API and emits `resync`, then the `alarm` events held meanwhile: the application
   * applies the list, then what happened after (an event committed before the list was read is in it too;
   * applying by alarm id, or comparing `changed_at`, makes that harmless).
   */
  private async reload(reason: string): Promise<void> {
    if (this.reloading) {
      this.reloadAgain = true;
      return;
    }
    this.reloading = true;
    try {
      for (let attempt = 0; !this.closed;) {
        this.reloadAgain = false;
        const alarms = await this.fetchAlarms().catch(() => null);
        if (this.closed) return;
        if (alarms === null) {
          await this.backoff(attempt++);
          continue;
        }
        if (this.reloadAgain) continue;
        for (const l of this.listeners.resync) l({ reason, alarms });
        return;
      }
    } finally {
      this.reloading = false;
      const held = this.held;
      this.held = [];
      if (!this.closed) for (const e of held) for (const l of this.listeners.alarm) l(e);
    }
  }

  private backoff(attempt: number): Promise<void> {
    const min = this.options.minBackoffMs ?? 1000;
    const max = this.options.maxBackoffMs ?? 30_000;
    const delay = Math.min(max, min * 2 ** attempt) * (0.5 + Math.random() / 2);
    return new Promise((resolve) => {
      this.wakeReload = resolve;
      this.reloadTimer = setTimeout(resolve, delay);
    });
  }

  /** Every page of `GET /v1/alarms?{reloadQuery}`; throws on any answer but 200 with a list. */
  private async fetchAlarms(): Promise<Alarm[]> {
    const base = `${(this.options.apiUrl ?? '').replace(/\/+$/, '')}/v1/alarms`;
    const alarms: Alarm[] = [];
    let cursor: string | null = null;
    do {
      const query = new URLSearchParams(this.options.reloadQuery ?? 'state=active');
      if (!query.has('limit')) query.set('limit', '500');
      if (cursor !== null) query.set('cursor', cursor);
      const res = await fetch(`${base}?${query.toString()}`, {
        headers: { Authorization: `Bearer ${this.options.token}` },
      });
      if (res.status !== 200) throw new Error(`GET /v1/alarms answered ${res.status}`);
      const page = (await res.json()) as unknown;
      if (!isRecord(page) || !Array.isArray(page.alarms)) throw new Error('GET /v1/alarms: no alarm list');
      alarms.push(...(page.alarms as Alarm[]));
      cursor = typeof page.next_cursor === 'string' ? page.next_cursor : null;
    } while (cursor !== null);
    return alarms;
  }

  private setPosition(id: string | null): void {
    this.lastEventId = id;
    if (id) this.options.store?.set(this.storeKey, id);
  }

  private onState(state: string): void {
    const mapped: ConnectionState =
      state === 'connected'
        ? 'live'
        : state === 'connecting' || state === 'initialized'
          ? this.attempts > 0
            ? 'reconnecting'
            : 'connecting'
          : state === 'unavailable'
            ? 'reconnecting'
            : 'offline';
    if (state === 'connected') {
      this.attempts = 0;
      clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
    }
    for (const l of this.listeners.state) l(mapped);
    if (this.closed || this.restarting || state === 'connected') return;
    // pusher-js stops for good on 4000-4099 closes and on "failed", and after a dropped connection it
    // retries on its own slow schedule (seconds to tens of seconds). Whatever the state, if we are not
    // connected when the backoff runs out, we start a fresh attempt: an operator's screen must come back as
    // soon as the server does.
    this.scheduleRestart();
  }

  private scheduleRestart(): void {
    if (this.retryTimer) return; // one pending restart at a time; state changes do not push it back
    const min = this.options.minBackoffMs ?? 1000;
    const max = this.options.maxBackoffMs ?? 30_000;
    const delay = Math.min(max, min * 2 ** this.attempts) * (0.5 + Math.random() / 2);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (this.closed || this.pusher.connection.state === 'connected') return;
      this.attempts++;
      this.restarting = true;
      this.pusher.disconnect();
      this.restarting = false;
      this.pusher.connect();
    }, delay);
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null;
}

/** Orders `<ms>-<seq>` event ids; an id of any other shape counts as newer (never dropped as a repeat). */
export function compareIds(a: string, b: string): number {
  const ID = /^\d{1,20}-\d{1,20}$/;
  if (!ID.test(a) || !ID.test(b)) return 1;
  const [am = '0', as = '0'] = a.split('-');
  const [bm = '0', bs = '0'] = b.split('-');
  const x = BigInt(am) - BigInt(bm) || BigInt(as) - BigInt(bs);
  return x < 0n ? -1 : x > 0n ? 1 : 0;
}
