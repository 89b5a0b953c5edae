import type { Cluster, Redis } from 'ioredis';

/**
 * How envelopes travel between processes: publish to a channel, subscribe, unsubscribe. Plain Redis
 * pub/sub here; sharded pub/sub (SPUBLISH/SSUBSCRIBE on a Redis Cluster) is a second implementation of
 * the same interface. What travels is envelope-codec.ts' text; the transport never looks inside.
 */
export interface PubSubTransport {
  /** Publishes one message; resolves with how many subscribers Redis handed it to. */
  publish(channel: string, message: string): Promise<number>;
  /** Publishes several in one round trip; rejects if any was refused. */
  publishMany(messages: readonly { channel: string; message: string }[]): Promise<void>;
  /** Resolves once Redis delivers the channel's messages to this process. */
  subscribe(channel: string): Promise<void>;
  unsubscribe(channel: string): Promise<void>;
  /** Every message of every subscribed channel, in publishing order per channel. */
  onMessage(handler: (channel: string, message: string) => void): void;
  /**
   * After the subscriber connection was lost and is back: messages published meanwhile reached nobody
   * here. Called before any message of the new connection is handed to `onMessage`; `settled` resolves once
   * every subscription is live again (rejects if Redis does not answer).
   */
  onResubscribed(handler: (settled: Promise<void>) => void): void;
  /** true while messages can be published */
  readonly publishReady: boolean;
}

/**
 * Plain pub/sub on two connections: `publisher` for PUBLISH (and any other command), `subscriber` in
 * subscriber mode for this transport alone (once subscribed, Redis lets it run no other command).
 * ioredis re-subscribes it to every channel after a reconnect.
 */
export class RedisPubSub implements PubSubTransport {
  /** (UN)SUBSCRIBEs waiting for the subscriber connection to be ready, in call order */
  private waiting: (() => void)[] = [];
  /** the subscriber connection has been ready before: a later 'ready' is a reconnect */
  private everReady: boolean;
  private readonly resubscribed: ((settled: Promise<void>) => void)[] = [];

  constructor(
    private readonly publisher: Redis,
    private readonly subscriber: Redis,
  ) {
    this.everReady = subscriber.status === 'ready';
    subscriber.on('ready', () => {
      if (this.everReady) this.onReconnected();
      this.everReady = true;
      const run = this.waiting;
      this.waiting = [];
      for (const send of run) send();
    });
  }

  get publishReady(): boolean {
    return this.publisher.status === 'ready';
  }

  publish(channel: string, message: string): Promise<number> {
    return this.publisher.publish(channel, message);
  }

  async publishMany(messages: readonly { channel: string; message: string }[]): Promise<void> {
    if (messages.length === 0) return;
    const pipeline = this.publisher.pipeline();
    for (const m of messages) pipeline.publish(m.channel, m.message);
    const results = (await pipeline.exec()) ?? [];
    const failed = results.find(([err]) => err !== null);
    if (failed) throw failed[0];
  }

  async subscribe(channel: string): Promise<void> {
    await this.whenReady(() => this.subscriber.subscribe(channel));
  }

  async unsubscribe(channel: string): Promise<void> {
    await this.whenReady(() => this.subscriber.unsubscribe(channel));
  }

  onMessage(handler: (channel: string, message: string) => void): void {
    this.subscriber.on('message', handler);
  }

  onResubscribed(handler: (settled: Promise<void>) => void): void {
    this.resubscribed.push(handler);
  }

  /**
   * ioredis has just re-sent the SUBSCRIBEs of the lost connection (in its ready handler, before it emits
   * 'ready' on the next tick, so no message of the new connection has been read yet). A PING written now
   * is answered after them: then every channel is live again.
   */
  private onReconnected(): void {
    if (this.resubscribed.length === 0) return;
    const settled = this.subscriber.ping().then(() => undefined);
    // A handler that does not wait on it must not leave an unhandled rejection behind.
    settled.catch(() => undefined);
    for (const handler of this.resubscribed) handler(settled);
  }

  /**
   * Sends a (UN)SUBSCRIBE only once the connection is ready, keeping call order. ioredis writes SUBSCRIBE
   * as soon as the socket connects (Redis accepts it while loading), before its ready check; that check's INFO
   * then fails on the now-subscribed connection, ioredis reconnects and, the connection never having been
   * ready, does not resubscribe: the SUBSCRIBE had succeeded and the subscription is silently gone.
   * Once ready, ioredis itself re-subscribes everything after a reconnect.
   */
  private whenReady<T>(send: () => Promise<T>): Promise<T> {
    if (this.subscriber.status === 'ready' && this.waiting.length === 0) return send();
    return new Promise<T>((resolve, reject) => this.waiting.push(() => send().then(resolve, reject)));
  }
}

/**
 * Sharded pub/sub on a Redis Cluster (Redis 7): SPUBLISH / SSUBSCRIBE / SUNSUBSCRIBE. A sharded message
 * stays within the shard owning its channel's slot (plain PUBLISH on a cluster is broadcast to every node,
 * so every node carries all the traffic). Channel names come from RedisKeys, whose user and fan-out channels
 * carry a shard tag, so the delivery script can SPUBLISH from inside the shard it runs on.
 *
 * `subscriber` must be created with `shardedSubscribers: true` (createRedisClient's option): ioredis then
 * keeps one subscriber connection per master, sends each SSUBSCRIBE to the master owning the channel, emits
 * every message as `smessage`, and re-subscribes when the slot map changes (failover, resharding).
 * `publisher` is any cluster connection; both may be the same client.
 */
export class ShardedPubSub implements PubSubTransport {
  private readonly resubscribed: ((settled: Promise<void>) => void)[] = [];
  /** the channels this transport is subscribed to, to subscribe them again after a shard's loss */
  private readonly channels = new Set<string>();
  /** a shard's subscriber connection ended since the last report */
  private shardLost = false;
  /** a report's re-subscription is running: further resets during it are part of the same loss */
  private reporting = false;

  constructor(
    private readonly publisher: Cluster,
    private readonly subscriber: Cluster,
  ) {
    // The cluster client's own reconnect ('ready' again after having been ready) is one kind of loss.
    let everReady = subscriber.status === 'ready';
    subscriber.on('ready', () => {
      if (everReady) for (const handler of this.resubscribed) handler(Promise.resolve());
      everReady = true;
      // Nodes dropped while (re)connecting (ioredis prunes its pool then) are covered by this report.
      this.shardLost = false;
    });
    // The other is one shard's subscriber connection ending (its master crashed: a failover) while the
    // client stays ready: ioredis ('-node') replaces it once the slot map names the promoted replica and
    // re-sends that shard's SSUBSCRIBEs without waiting for them ('subscribersReady', emitted after every
    // attempt, successful or not). Whatever was published to the shard in between reached nobody here.
    subscriber.on('-node', () => (this.shardLost = true));
    subscriber.on('subscribersReady', () => {
      if (!this.shardLost || this.reporting || this.resubscribed.length === 0) return;
      this.shardLost = false;
      this.reporting = true;
      const settled = this.subscribeAgain().finally(() => (this.reporting = false));
      settled.catch(() => undefined);
      for (const handler of this.resubscribed) handler(settled);
    });
  }

  /**
   * Resolves once every channel is subscribed on the master that owns it now: our own SSUBSCRIBEs, answered
   * by those masters, are the proof ioredis' fire-and-forget re-subscription does not give. A master that
   * is not reachable yet (the failover is still going on) is retried for up to 30 s, then it rejects.
   * Repeating an SSUBSCRIBE is harmless (Redis keeps one subscription per channel and connection).
   */
  private async subscribeAgain(): Promise<void> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        await Promise.all([...this.channels].map((channel) => this.subscriber.ssubscribe(channel)));
        return;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  }

  onResubscribed(handler: (settled: Promise<void>) => void): void {
    this.resubscribed.push(handler);
  }

  get publishReady(): boolean {
    return this.publisher.status === 'ready';
  }

  async publish(channel: string, message: string): Promise<number> {
    return Number(await this.publisher.spublish(channel, message));
  }

  /**
   * A cluster pipeline must stay within one slot and these channels are on many, so the messages go out as
   * concurrent commands: ioredis writes them to each node's connection back to back, one round trip.
   */
  async publishMany(messages: readonly { channel: string; message: string }[]): Promise<void> {
    await Promise.all(messages.map((m) => this.publisher.spublish(m.channel, m.message)));
  }

  async subscribe(channel: string): Promise<void> {
    this.channels.add(channel);
    try {
      await this.subscriber.ssubscribe(channel);
    } catch (err) {
      this.channels.delete(channel);
      throw err;
    }
  }

  async unsubscribe(channel: string): Promise<void> {
    this.channels.delete(channel);
    await this.subscriber.sunsubscribe(channel);
  }

  onMessage(handler: (channel: string, message: string) => void): void {
    this.subscriber.on('smessage', handler);
  }
}

/** The transport for a connection: sharded pub/sub on a cluster, plain pub/sub on a single Redis. */
export function createPubSubTransport(
  publisher: Redis | Cluster,
  subscriber: Redis | Cluster,
): PubSubTransport {
  if (publisher.isCluster !== subscriber.isCluster)
    throw new Error('publisher and subscriber topologies differ');
  return publisher.isCluster
    ? new ShardedPubSub(publisher as Cluster, subscriber as Cluster)
    : new RedisPubSub(publisher as Redis, subscriber as Redis);
}
