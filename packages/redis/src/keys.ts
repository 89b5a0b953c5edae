/**
 * How many shards user-keyed data is spread over on a Redis Cluster. A user's log, their pub/sub channel, the
 * `user-batch` fan-out channel carrying them and the per-shard copies of an event's delivery mark and data all
 * carry the hash tag of shard `userId mod shards` (`{<prefix>:s<N>}`): on a Redis Cluster they are in one
 * slot, so one delivery script call per shard can touch them all, and the shards spread over the masters.
 * Fixed: changing it moves every user to another tag, i.e. their logs and marks are no longer found.
 *
 * A single Redis has one shard (`s0`): there the tags buy nothing, and every shard more would cost one more
 * copy of each event's data and mark and one more script call per event.
 */
export const USER_SHARDS = 16;

/** The shard count for a topology: USER_SHARDS on a Redis Cluster (seed nodes given), else 1. */
export function shardsFor(target: { clusterNodes?: readonly unknown[] }): number {
  return (target.clusterNodes?.length ?? 0) > 0 ? USER_SHARDS : 1;
}

/**
 * Every Redis key and pub/sub channel name alarmcast uses, built in one place. A prefix isolates one
 * deployment (or one test) from another on a shared Redis. Parts are checked so that no id can smuggle the
 * delimiter in and alias another key. Every key starts with `<prefix>:` except BullMQ's, whose prefix must
 * be a hash tag as a whole (`{<prefix>:bull}`).
 */
export class RedisKeys {
  /** How many shards user-keyed data is spread over: `shardsFor(target)`; 1 (a single Redis) by default. */
  readonly shards: number;

  constructor(
    readonly prefix: string = 'ac',
    options: { shards?: number } = {},
  ) {
    assertPart('prefix', prefix);
    const shards = options.shards ?? 1;
    if (!Number.isInteger(shards) || shards < 1 || shards > 99)
      throw new Error(`invalid shard count ${shards}`);
    this.shards = shards;
  }

  /** The shard of a user (a non-negative integer id, as a number or its digits). */
  shardOf(userId: number | string): number {
    const text = String(userId);
    if (!/^\d{1,15}$/.test(text)) throw new Error(`invalid userId for a Redis key: ${JSON.stringify(text)}`);
    return Number(text) % this.shards;
  }

  /** The hash tag of shard `shard` (0 <= shard < shards). */
  shardTag(shard: number): string {
    if (!Number.isInteger(shard) || shard < 0 || shard >= this.shards)
      throw new Error(`invalid shard ${shard}`);
    return `{${this.prefix}:s${shard}}`;
  }

  /**
   * Pub/sub channel carrying the events of one Pusher channel. A user's own channel (`private-user.<id>`)
   * carries the user's shard tag, since the delivery script publishes to it; any other channel's name is
   * hashed whole, which spreads those channels over the cluster.
   */
  pubsubChannel(pusherChannel: string): string {
    if (!/^[A-Za-z0-9_\-=@,.;]{1,200}$/.test(pusherChannel))
      throw new Error(`invalid channel ${pusherChannel}`);
    const user = /^private-user\.(\d{1,15})$/.exec(pusherChannel);
    if (user) return `${this.prefix}:ch:${this.shardTag(this.shardOf(user[1]!))}:${pusherChannel}`;
    const shard = this.stateShardOf(pusherChannel);
    if (shard !== null) return `${this.prefix}:ch:${this.shardTag(shard)}:${pusherChannel}`;
    return `${this.prefix}:ch:${pusherChannel}`;
  }

  /**
   * The shard of a state channel (`private-device.{id}`, `private-tenant.{id}`, `private-campaign.{id}`:
   * entity id mod the shard count), or null for a channel that is none. A state channel's latest state, its
   * shard's due set and its pub/sub channel all carry that shard's tag, so the state script (state-channel.ts)
   * can store and publish in one call on a Redis Cluster.
   */
  stateShardOf(pusherChannel: string): number | null {
    const m = /^private-(?:device|tenant|campaign)\.(\d{1,15})$/.exec(pusherChannel);
    return m ? this.shardOf(m[1]!) : null;
  }

  /** Prefix of the latest-state hashes of shard `shard`'s state channels; the script appends the channel. */
  stateKeyPrefix(shard: number): string {
    return `${this.prefix}:state:${this.shardTag(shard)}:`;
  }

  /** A state channel's latest state (a hash: state, version, pending changes, last publish, sequence). */
  stateKey(pusherChannel: string): string {
    const shard = this.stateShardOf(pusherChannel);
    if (shard === null) throw new Error(`not a state channel: ${pusherChannel}`);
    return this.stateKeyPrefix(shard) + pusherChannel;
  }

  /** Shard `shard`'s state channels with a conflated change waiting, scored by when it is due (ms). */
  stateDue(shard: number): string {
    return `${this.prefix}:state-due:${this.shardTag(shard)}`;
  }

  /** Prefix of the pub/sub channels of shard `shard`'s state channels; the script appends the channel. */
  stateChannelPrefix(shard: number): string {
    return `${this.prefix}:ch:${this.shardTag(shard)}:`;
  }

  /** Inverse of pubsubChannel, for messages arriving on the subscriber. */
  pusherChannelOf(pubsubChannel: string): string | null {
    const head = `${this.prefix}:ch:`;
    if (!pubsubChannel.startsWith(head)) return null;
    const rest = pubsubChannel.slice(head.length);
    // Pusher channel names cannot hold `{`, so a leading one is the shard tag.
    if (!rest.startsWith('{')) return rest;
    const close = rest.indexOf('}:');
    return close < 0 ? null : rest.slice(close + 2);
  }

  /**
   * The pub/sub channel of shard `shard`'s `user-batch` envelopes (one event, many users of that shard).
   * Every edge subscribes to all of them (`userBatchChannels`); a big broadcast's batches are spread over
   * the shards' channels, so on a cluster no one shard carries every edge's share of it.
   */
  userBatchChannel(shard: number): string {
    return `${this.prefix}:fanout:${this.shardTag(shard)}:user-batch`;
  }

  /** Every shard's `user-batch` channel, shard 0 first. */
  get userBatchChannels(): string[] {
    return Array.from({ length: this.shards }, (_, shard) => this.userBatchChannel(shard));
  }

  isUserBatchChannel(channel: string): boolean {
    const m = /^(.*):fanout:\{.*:s(\d{1,2})\}:user-batch$/.exec(channel);
    if (m === null || m[1] !== this.prefix || Number(m[2]) >= this.shards) return false;
    return this.userBatchChannel(Number(m[2])) === channel;
  }

  /** A user's bounded event log (a stream; its entry ids are the user's `event_id`s). */
  userLog(userId: number | string): string {
    return `${this.prefix}:log:${this.shardTag(this.shardOf(userId))}:user:${userId}`;
  }

  /**
   * An event's name and data, stored once per shard for every log entry of that shard that references it
   * (the copy sits in the slot of the users' logs, so a cluster's script can write it and a replay read it).
   */
  eventData(eventId: string, shard: number): string {
    return `${this.prefix}:ev:${this.shardTag(shard)}:${part('eventId', eventId)}`;
  }

  /**
   * An outbox event's delivery mark on one shard: that shard's users up to this id have it, so a retried
   * job delivers to nobody twice.
   */
  deliveredTo(eventId: string, shard: number): string {
    return `${this.prefix}:delivered:${this.shardTag(shard)}:${part('eventId', eventId)}`;
  }

  /** Prefix of the log keys of shard `shard`'s users; the delivery script appends the user id. */
  userLogPrefix(shard: number): string {
    return `${this.prefix}:log:${this.shardTag(shard)}:user:`;
  }

  /**
   * The open tasks of a device (a hash: task key → task wire JSON), sent after its status snapshot to every
   * (re)subscriber of `private-device.{id}`; in the device channel's shard.
   */
  deviceOpenTasks(deviceId: number): string {
    const channel = `private-device.${deviceId}`;
    return `${this.prefix}:tasks:${this.shardTag(this.stateShardOf(channel)!)}:${channel}`;
  }

  /** A campaign's last broadcast progress (wire JSON), the snapshot of `private-campaign.{id}`. */
  campaignState(campaignId: string): string {
    return `${this.prefix}:campaign:${part('campaignId', campaignId)}`;
  }

  /**
   * Held (SET NX PX) by the ingest process that last broadcast a campaign's progress, for the minimum
   * interval between two: every process of a deployment shares the one limit per campaign.
   */
  campaignProgressLock(campaignId: string): string {
    return `${this.prefix}:campaign-progress:${part('campaignId', campaignId)}`;
  }

  /** Key prefix of one rate limit's counters (the limiter appends `:{client key}`), shared by every process. */
  rateLimit(name: string): string {
    return `${this.prefix}:rl:${part('rateLimit', name)}`;
  }

  /**
   * The operator view's hash of live edges: field = an edge's node id, value = its status JSON (connections,
   * subscriptions, when it was written). Each edge rewrites its field every few seconds; readers skip stale ones.
   */
  get opsEdges(): string {
    return `${this.prefix}:ops:edges`;
  }

  /** The operator view's recent resume failures and revocations: a list capped by every writer (LTRIM). */
  get opsEvents(): string {
    return `${this.prefix}:ops:events`;
  }

  /** Prefix of the pub/sub channels of shard `shard`'s users; the delivery script appends the user id. */
  userChannelPrefix(shard: number): string {
    return `${this.prefix}:ch:${this.shardTag(shard)}:private-user.`;
  }

  /**
   * BullMQ's own key prefix (BullMQ appends `:{queue}:...`). BullMQ's scripts touch several keys of a queue
   * at once, so on a cluster its prefix must be one hash tag.
   */
  get bullPrefix(): string {
    return `{${this.prefix}:bull}`;
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
