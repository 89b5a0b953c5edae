import { z } from 'zod';

/** A user log entry id (`<ms>-<seq>`), which is the `event_id` a user sees. */
const STREAM_ID = /^\d{1,20}-\d{1,20}$/;

/** A Pusher socket id (`<n>.<n>`). */
const SOCKET_ID = /^\d{1,20}\.\d{1,20}$/;

/** Longest node id, channel and event name; longest outbox event id and log position. */
const NAME_MAX = 200;
const ID_MAX = 64;

/** An outbox event id (a bigint as decimal text in production). */
const SOURCE_ID = z.string().min(1).max(ID_MAX);

/**
 * At most this many users per `user-batch` message an edge accepts. The resolver sends at most 500 per
 * script call (packages/redis `user-log-writer.ts`); the margin lets that number grow without a
 * coordinated upgrade of the edges.
 */
export const USER_BATCH_MAX = 1000;

/**
 * The message formats on Redis pub/sub, from any publisher (resolver, HTTP API) to every ws-edge.
 *
 * - `event`: one Pusher channel's event, on that channel's Redis channel; an edge subscribes to the Redis
 *   channels of the Pusher channels its sockets hold and forwards `event`/`data` to them.
 * - `user-batch`: one event for many users at once, each with their own `event_id`, on the one fan-out
 *   channel every edge subscribes to. A broadcast to a large tenant costs one message per batch instead of
 *   one per user (Redis' publishing and the edge's per-message work both scale with messages); an edge
 *   sends each listed user's copy to its local sockets on `private-user.{id}`, and skips users it does not
 *   hold. Small broadcasts stay on the per-user channels, which only the edges holding those users receive.
 *
 * `v` lets an edge drop messages of a format it does not know during a rolling upgrade.
 */
export const PubSubEnvelope = z.discriminatedUnion('type', [
  z.object({
    v: z.literal(1),
    /** id of the publishing process, for tracing */
    node: z.string().max(NAME_MAX),
    /**
     * the outbox event id this copy was resolved from (resolver deliveries only), so that one alarm can be
     * followed through every service's logs by one id (the `eventId` log field)
     */
    source: SOURCE_ID.optional(),
    type: z.literal('event'),
    channel: z.string().min(1).max(NAME_MAX),
    event: z.string().min(1).max(NAME_MAX),
    /** already a JSON string, forwarded byte for byte (Laravel sends `data` as a string) */
    data: z.string(),
    /** position in the recipient's event log, for user channels */
    eventId: z.string().max(ID_MAX).optional(),
    /** Pusher socket id (HTTP API `socket_id`, a client event's sender) that must not receive this event */
    excludeSocketId: z.string().regex(SOCKET_ID).optional(),
  }),
  z.object({
    v: z.literal(1),
    node: z.string().max(NAME_MAX),
    source: SOURCE_ID.optional(),
    type: z.literal('user-batch'),
    event: z.string().min(1).max(NAME_MAX),
    /**
     * Every copy's `data` up to its event id: user U's data is `dataHead + '"event_id":"' + id + '"}'`,
     * exactly what that user's `event` envelope would carry.
     */
    dataHead: z.string().startsWith('{'),
    /** [user id, that user's event id], each user once */
    users: z
      .array(z.tuple([z.number().int().positive(), z.string().regex(STREAM_ID)]))
      .min(1)
      .max(USER_BATCH_MAX),
  }),
]);
export type PubSubEnvelope = z.infer<typeof PubSubEnvelope>;
export type ChannelEventEnvelope = Extract<PubSubEnvelope, { type: 'event' }>;
export type UserBatchEnvelope = Extract<PubSubEnvelope, { type: 'user-batch' }>;

const isString = (x: unknown, min: number, max: number): x is string =>
  typeof x === 'string' && x.length >= min && x.length <= max;

/**
 * `PubSubEnvelope.safeParse(json)`, written out by hand: every edge checks every message it reads, and zod
 * took ~10 % of an edge's CPU in the storm benchmark (most of it the `users` tuples of a batch, which every
 * edge reads whole). It accepts exactly what the schema accepts and returns the same value (unknown members
 * dropped); the contracts test `envelope.test.ts` holds the two together over generated envelopes.
 */
export function checkPubSubEnvelope(json: unknown): PubSubEnvelope | null {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return null;
  const { v, node, source, type, event } = json as Record<string, unknown>;
  if (v !== 1 || !isString(node, 0, NAME_MAX) || !isString(event, 1, NAME_MAX)) return null;
  if (source !== undefined && !isString(source, 1, ID_MAX)) return null;
  // Built member by member (no spreads), the way zod returns it: absent optional members stay absent.
  if (type === 'event') {
    const { channel, data, eventId, excludeSocketId } = json as Record<string, unknown>;
    if (!isString(channel, 1, NAME_MAX) || typeof data !== 'string') return null;
    if (eventId !== undefined && !isString(eventId, 0, ID_MAX)) return null;
    if (
      excludeSocketId !== undefined &&
      !(typeof excludeSocketId === 'string' && SOCKET_ID.test(excludeSocketId))
    )
      return null;
    const out: ChannelEventEnvelope = { v, node, type, channel, event, data };
    if (source !== undefined) out.source = source;
    if (eventId !== undefined) out.eventId = eventId;
    if (excludeSocketId !== undefined) out.excludeSocketId = excludeSocketId;
    return out;
  }
  if (type === 'user-batch') {
    const { dataHead, users } = json as Record<string, unknown>;
    if (typeof dataHead !== 'string' || !dataHead.startsWith('{')) return null;
    if (!Array.isArray(users) || users.length < 1 || users.length > USER_BATCH_MAX) return null;
    for (const u of users as unknown[]) {
      if (!Array.isArray(u) || u.length !== 2) return null;
      const userId: unknown = u[0];
      const eventId: unknown = u[1];
      if (typeof userId !== 'number' || !Number.isSafeInteger(userId) || userId <= 0) return null;
      if (typeof eventId !== 'string' || !STREAM_ID.test(eventId)) return null;
    }
    const out: UserBatchEnvelope = { v, node, type, event, dataHead, users: users as [number, string][] };
    if (source !== undefined) out.source = source;
    return out;
  }
  return null;
}
