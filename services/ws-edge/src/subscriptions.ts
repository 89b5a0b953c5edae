import { parseChannel, userChannel } from '@alarmcast/contracts';
import { decodeEnvelope, type PubSubTransport, type RedisKeys } from '@alarmcast/redis';
import type { Logger } from '@alarmcast/observability';
import { serverFrames } from './pusher-protocol.js';
import { SmallSet } from './small-set.js';

/** A local socket as the registry sees it. */
export interface ChannelMember {
  /** compared with an envelope's excluded socket (the publisher's `socket_id`, a client event's sender) */
  readonly socketId: string;
  /**
   * Sends one serialized frame of `channel`; `eventId` is its position in the user's log, for user channels.
   * The member applies its own backpressure policy and never throws.
   */
  deliver(frame: string, channel: string, eventId: string | undefined): void;
  /**
   * The subscriber connection came back after a disconnect: messages published meanwhile never reached
   * this node. `settled` resolves once Redis delivers the channel's messages again. Called synchronously
   * before any message of the new connection is handed to `deliver`.
   */
  resubscribed?(channel: string, settled: Promise<void>): void;
}

export type DropReason = 'malformed_envelope' | 'channel_mismatch' | 'no_local_member';

export interface ChannelSubscriptionsOptions {
  /** the pub/sub transport whose subscriptions this registry alone manages */
  transport: PubSubTransport;
  keys: RedisKeys;
  log: Logger;
  onDropped?: (reason: DropReason) => void;
  /**
   * A pub/sub message reached local sockets: `source` is the outbox event it was resolved from (resolver
   * deliveries), `eventId` a user log position it carried (the first one, for a batch), `sockets` how many
   * sockets it was handed to. For metrics (pub/sub lag) and the per-event delivery log.
   */
  onDelivered?: (delivery: {
    source: string | undefined;
    eventId: string | undefined;
    sockets: number;
  }) => void;
}

/** what Entry.subscribed becomes once Redis has acknowledged */
const SUBSCRIBED = Promise.resolve();

interface Entry {
  members: SmallSet<ChannelMember>;
  /** settles when Redis has acknowledged the SUBSCRIBE; later joiners wait on the same promise */
  subscribed: Promise<void>;
}

/**
 * The node-local registry: Pusher channel → local sockets. The node SUBSCRIBEs to a channel's Redis pub/sub
 * channel when its first local socket joins and UNSUBSCRIBEs when the last one leaves, so each node receives
 * only the traffic its own sockets need. The transport sends (UN)SUBSCRIBEs in call order, so an
 * UNSUBSCRIBE followed by a SUBSCRIBE for the same channel (leave then rejoin) always ends subscribed.
 *
 * Besides, from its first join on, the node is subscribed to the fan-out channel of `user-batch` envelopes
 * (large broadcasts: one message for many users) and hands each listed user's copy to the members of
 * `private-user.{id}` it holds. Redis delivers the messages of both kinds to this one connection in the
 * order they were published, so a user's events arrive in log order whichever way each was sent. Messages
 * are decoded with envelope-codec.ts' decoder (packages/redis), the reader of the layout the resolver's
 * script writes.
 */
export class ChannelSubscriptions {
  private readonly channels = new Map<string, Entry>();
  private members = 0;
  /** settles when Redis has acknowledged the fan-out channel's SUBSCRIBE */
  private batchesSubscribed: Promise<void> | undefined;

  constructor(private readonly options: ChannelSubscriptionsOptions) {
    options.transport.onMessage((redisChannel, message) => this.onMessage(redisChannel, message));
    options.transport.onResubscribed((settled) => this.onResubscribed(settled));
  }

  /**
   * Adds a member. Resolves once Redis delivers the channel's messages to this node, which is when the socket
   * may be told `subscription_succeeded`; rejects if Redis refused, the member is then no longer in the set.
   */
  join(channel: string, member: ChannelMember): Promise<void> {
    let entry = this.channels.get(channel);
    if (!entry) {
      const created: Entry = { members: new SmallSet(), subscribed: Promise.resolve() };
      const redisChannel = this.options.keys.pubsubChannel(channel);
      created.subscribed = Promise.all([
        this.subscribeBatches(),
        this.options.transport.subscribe(redisChannel),
      ]).then(
        () => {
          // Later joiners need no promise of their own: one shared resolved promise instead of one kept
          // per channel (most channels are one socket's user channel: ~100 bytes of an idle connection).
          created.subscribed = SUBSCRIBED;
        },
        (err: unknown) => {
          // Forget the failed entry so that the next join tries again instead of inheriting the failure.
          if (this.channels.get(channel) === created) {
            this.channels.delete(channel);
            this.members -= created.members.size;
          }
          throw err;
        },
      );
      entry = created;
      this.channels.set(channel, entry);
    }
    if (!entry.members.has(member)) {
      entry.members.add(member);
      this.members += 1;
    }
    return entry.subscribed;
  }

  leave(channel: string, member: ChannelMember): void {
    const entry = this.channels.get(channel);
    if (!entry || !entry.members.delete(member)) return;
    this.members -= 1;
    if (entry.members.size > 0) return;
    this.channels.delete(channel);
    const redisChannel = this.options.keys.pubsubChannel(channel);
    this.options.transport.unsubscribe(redisChannel).catch((err: unknown) => {
      // Harmless beyond a little traffic: messages for a channel without members are dropped on arrival.
      this.options.log.warn({ err, channel }, 'UNSUBSCRIBE failed');
    });
  }

  private subscribeBatches(): Promise<void> {
    // One channel per user shard (keys.ts): a big broadcast's batches are spread over all of them.
    const { transport, keys } = this.options;
    return (this.batchesSubscribed ??= Promise.all(
      keys.userBatchChannels.map((c) => transport.subscribe(c)),
    ).then(
      () => undefined,
      (err: unknown) => {
        this.batchesSubscribed = undefined; // the next join tries again
        throw err;
      },
    ));
  }

  /**
   * The transport's subscriber connection is back after a loss: tell every member at once, before any
   * message of the new connection is delivered, so that each can hold live events until it has caught up
   * with what was published while the node was not listening.
   */
  private onResubscribed(settled: Promise<void>): void {
    for (const [channel, entry] of this.channels) {
      for (const member of entry.members) member.resubscribed?.(channel, settled);
    }
  }

  /** Pusher channels this node is subscribed to (or subscribing to) for its sockets. */
  localChannels(): string[] {
    return [...this.channels.keys()];
  }

  get channelCount(): number {
    return this.channels.size;
  }

  /** socket × channel pairs */
  get membershipCount(): number {
    return this.members;
  }

  /** socket × channel pairs per channel kind (`user`, `tenant`, ...), counted now. */
  membershipsByKind(): Map<string, number> {
    const byKind = new Map<string, number>();
    for (const [channel, entry] of this.channels) {
      const kind = parseChannel(channel)?.kind ?? 'other';
      byKind.set(kind, (byKind.get(kind) ?? 0) + entry.members.size);
    }
    return byKind;
  }

  private onMessage(redisChannel: string, message: string): void {
    if (this.options.keys.isUserBatchChannel(redisChannel)) {
      this.onUserBatch(message);
      return;
    }
    const channel = this.options.keys.pusherChannelOf(redisChannel);
    const entry = channel === null ? undefined : this.channels.get(channel);
    if (channel === null || !entry) {
      // A message already in flight when we unsubscribed, or another subscriber's channel on this connection.
      this.options.onDropped?.('no_local_member');
      return;
    }
    const envelope = decodeEnvelope(message);
    if (envelope?.type !== 'event') {
      this.options.log.warn(
        { channel, message: message.slice(0, 200) },
        'dropped a malformed pub/sub message',
      );
      this.options.onDropped?.('malformed_envelope');
      return;
    }
    if (envelope.channel !== channel) {
      // The envelope's channel decides nothing here, but a publisher that disagrees with itself is a bug
      // worth seeing before it sends one user's events down another user's channel.
      this.options.log.warn(
        { channel, envelopeChannel: envelope.channel },
        'dropped a pub/sub message for another channel',
      );
      this.options.onDropped?.('channel_mismatch');
      return;
    }
    // Serialized once, whatever the number of sockets.
    const frame = serverFrames.channelEvent(channel, envelope.event, envelope.data);
    let sockets = 0;
    for (const member of entry.members) {
      if (member.socketId !== envelope.excludeSocketId) {
        member.deliver(frame, channel, envelope.eventId);
        sockets += 1;
      }
    }
    if (sockets > 0)
      this.options.onDelivered?.({ source: envelope.source, eventId: envelope.eventId, sockets });
  }

  /** One event for many users: each local member of a listed user's channel gets that user's copy. */
  private onUserBatch(message: string): void {
    const batch = decodeEnvelope(message);
    if (batch?.type !== 'user-batch') {
      this.options.log.warn({ message: message.slice(0, 200) }, 'dropped a malformed user batch');
      this.options.onDropped?.('malformed_envelope');
      return;
    }
    const frameOf = serverFrames.userCopies(batch.event, batch.dataHead);
    let sockets = 0;
    for (const [userId, eventId] of batch.users) {
      const channel = userChannel(userId);
      // Users held by other nodes are skipped: every node reads every batch.
      const entry = this.channels.get(channel);
      if (!entry) continue;
      const frame = frameOf(channel, eventId);
      for (const member of entry.members) member.deliver(frame, channel, eventId);
      sockets += entry.members.size;
    }
    if (sockets > 0)
      this.options.onDelivered?.({ source: batch.source, eventId: batch.users[0]?.[1], sockets });
  }
}
