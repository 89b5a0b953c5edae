import { z } from 'zod';

/**
 * The one message format on Redis pub/sub, from any publisher (resolver, HTTP API) to every ws-edge.
 * One Redis channel per Pusher channel; the edge forwards `event`/`data` to the sockets subscribed there.
 * `v` lets an edge drop messages of a format it does not know during a rolling upgrade.
 */
export const PubSubEnvelope = z.discriminatedUnion('type', [
  z.object({
    v: z.literal(1),
    /** id of the publishing process, for tracing */
    node: z.string().max(200),
    type: z.literal('event'),
    channel: z.string().min(1).max(200),
    event: z.string().min(1).max(200),
    /** already a JSON string, forwarded byte for byte (Laravel sends `data` as a string) */
    data: z.string(),
    /** position in the recipient's event log, for user channels */
    eventId: z.string().max(64).optional(),
    /** Pusher socket id (HTTP API `socket_id`, a client event's sender) that must not receive this event */
    excludeSocketId: z
      .string()
      .regex(/^\d{1,20}\.\d{1,20}$/)
      .optional(),
  }),
]);
export type PubSubEnvelope = z.infer<typeof PubSubEnvelope>;
