/**
 * Every Redis key and pub/sub channel name alarmcast uses, built in one place. A prefix isolates one
 * deployment (or one test) from another on a shared Redis. Parts are checked so that no id can smuggle the
 * delimiter in and alias another key.
 */
export class RedisKeys {
  constructor(readonly prefix: string = 'ac') {
    assertPart('prefix', prefix);
  }

  /** Pub/sub channel carrying the events of one Pusher channel. */
  pubsubChannel(pusherChannel: string): string {
    if (!/^[A-Za-z0-9_\-=@,.;]{1,200}$/.test(pusherChannel))
      throw new Error(`invalid channel ${pusherChannel}`);
    return `${this.prefix}:ch:${pusherChannel}`;
  }

  /** Inverse of pubsubChannel, for messages arriving on the subscriber. */
  pusherChannelOf(pubsubChannel: string): string | null {
    const head = `${this.prefix}:ch:`;
    return pubsubChannel.startsWith(head) ? pubsubChannel.slice(head.length) : null;
  }

  /** The pub/sub channel every edge subscribes to for `user-batch` envelopes (one event, many users). */
  get userBatchChannel(): string {
    return `${this.prefix}:fanout:user-batch`;
  }

  /** A user's bounded event log (a stream; its entry ids are the user's `event_id`s). */
  userLog(userId: number | string): string {
    return `${this.prefix}:log:user:${part('userId', String(userId))}`;
  }

  /** An event's name and data, stored once for every user log entry that references it. */
  eventData(eventId: string): string {
    return `${this.prefix}:ev:${part('eventId', eventId)}`;
  }

  /** An outbox event's delivery mark: users up to this id have it, so a retried job delivers to nobody twice. */
  deliveredTo(eventId: string): string {
    return `${this.prefix}:delivered:${part('eventId', eventId)}`;
  }

  /** Prefix of every user log key; the delivery script appends the user id (ids are checked by the caller). */
  get userLogPrefix(): string {
    return `${this.prefix}:log:user:`;
  }

  /** Key prefix of one rate limit's counters (the limiter appends `:{client key}`), shared by every process. */
  rateLimit(name: string): string {
    return `${this.prefix}:rl:${part('rateLimit', name)}`;
  }

  /** BullMQ's own key prefix (BullMQ appends `:{queue}:...`). */
  get bullPrefix(): string {
    return `${this.prefix}:bull`;
  }
}

/** What a key part (the prefix, an id) may be: no `:` (the delimiter), nothing a shell or URL must quote. */
export const KEY_PART = /^[A-Za-z0-9_.-]{1,64}$/;

function assertPart(name: string, value: string): void {
  if (!KEY_PART.test(value)) throw new Error(`invalid ${name} for a Redis key: ${JSON.stringify(value)}`);
}

function part(name: string, value: string): string {
  assertPart(name, value);
  return value;
}
