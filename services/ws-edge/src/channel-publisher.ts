import { hostname } from 'node:os';
import type { PubSubEnvelope } from '@alarmcast/contracts';
import type { Redis, RedisKeys } from '@alarmcast/redis';

/** Pusher's socket id shape, as the edge issues it. */
export const SOCKET_ID = /^\d{1,20}\.\d{1,20}$/;

export interface ChannelEvent {
  channel: string;
  event: string;
  /** a JSON string, forwarded to sockets byte for byte */
  data: string;
  /** the socket that must not receive it (Pusher `socket_id`) */
  excludeSocketId?: string;
}

/**
 * Publishes channel events as `PubSubEnvelope`s, the same path the resolver takes, so an event reaches the
 * sockets of every edge node, this one included, through their own Redis subscriptions.
 */
export class ChannelPublisher {
  /** for tracing only: which process published an envelope */
  readonly nodeId = `ws-edge:${hostname()}:${process.pid}`;

  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
  ) {}

  get ready(): boolean {
    return this.redis.status === 'ready';
  }

  /**
   * One round trip for any number of events; rejects if Redis does not take them all. Fails at once while
   * Redis is away rather than queueing: a publisher retrying its request is better off than one waiting for
   * ioredis' reconnect attempts to run out.
   */
  async publish(events: readonly ChannelEvent[]): Promise<void> {
    if (events.length === 0) return;
    if (!this.ready) throw new Error(`Redis publisher is ${this.redis.status}`);
    const pipeline = this.redis.pipeline();
    for (const e of events) {
      const envelope: PubSubEnvelope = {
        v: 1,
        node: this.nodeId,
        type: 'event',
        channel: e.channel,
        event: e.event,
        data: e.data,
        ...(e.excludeSocketId === undefined ? {} : { excludeSocketId: e.excludeSocketId }),
      };
      pipeline.publish(this.keys.pubsubChannel(e.channel), JSON.stringify(envelope));
    }
    const results = (await pipeline.exec()) ?? [];
    const failed = results.find(([err]) => err !== null);
    if (failed) throw failed[0];
  }
}
