import { hostname } from 'node:os';
import { encodeChannelEvent, type PubSubTransport, type RedisKeys } from '@alarmcast/redis';

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
    private readonly transport: PubSubTransport,
    private readonly keys: RedisKeys,
  ) {}

  get ready(): boolean {
    return this.transport.publishReady;
  }

  /**
   * One round trip for any number of events; rejects if Redis does not take them all. Fails at once while
   * Redis is away rather than queueing: a publisher retrying its request is better off than one waiting for
   * ioredis' reconnect attempts to run out.
   */
  async publish(events: readonly ChannelEvent[]): Promise<void> {
    if (events.length === 0) return;
    if (!this.ready) throw new Error('Redis publisher is not ready');
    await this.transport.publishMany(
      events.map((e) => ({
        channel: this.keys.pubsubChannel(e.channel),
        message: encodeChannelEvent({
          node: this.nodeId,
          channel: e.channel,
          event: e.event,
          data: e.data,
          ...(e.excludeSocketId === undefined ? {} : { excludeSocketId: e.excludeSocketId }),
        }),
      })),
    );
  }
}
