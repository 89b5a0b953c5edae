import { z } from 'zod';
import { PUSHER_CHANNEL_NAME } from './channels.js';

/**
 * Wire shapes of the Pusher protocol endpoints ws-edge serves over HTTP: the publishing half of Pusher's
 * HTTP API (`POST /apps/{appId}/events`, `/batch_events`) and channel authorization
 * (`POST /broadcasting/auth`). Defined here, beside the other wire contracts, so that the edge's handlers
 * and the OpenAPI document (openapi.ts) use the same schemas.
 */

/**
 * Pusher's HTTP API limits (pusher.com/docs/channels/library_auth_reference/rest-api): an event's `data` is
 * at most 10 KB, one event names at most 100 channels, a batch holds at most 10 events.
 */
export const HTTP_API_LIMITS = {
  maxDataBytes: 10 * 1024,
  maxChannelsPerEvent: 100,
  maxBatchSize: 10,
  /** Pusher rejects a request whose auth_timestamp is further than this from its clock */
  maxClockSkewS: 600,
  /** ten 10 KB events with their names and channels fit with room to spare */
  maxBodyBytes: 256 * 1024,
} as const;

/** Pusher's socket id shape (`1234.5678`), bounded so that a huge number cannot reach an HMAC. */
export const PUSHER_SOCKET_ID = /^\d{1,20}\.\d{1,20}$/;

const channelName = z.string().regex(PUSHER_CHANNEL_NAME, 'is not a valid Pusher channel name');
const eventName = z.string().min(1).max(200);
const socketId = z.string().regex(PUSHER_SOCKET_ID, 'must look like 1234.5678');

/** `POST /apps/{appId}/events`: one event on one or more channels. */
export const PusherTriggerBody = z
  .object({
    name: eventName,
    // Laravel and every Pusher server SDK send data already encoded as a string, which sockets get verbatim.
    data: z.string(),
    channels: z.array(channelName).min(1).max(HTTP_API_LIMITS.maxChannelsPerEvent).optional(),
    channel: channelName.optional(),
    socket_id: socketId.optional(),
    info: z.string().optional(),
  })
  .refine((b) => (b.channels === undefined) !== (b.channel === undefined), {
    message: 'give exactly one of channels or channel',
  });
export type PusherTriggerBody = z.infer<typeof PusherTriggerBody>;

/** `POST /apps/{appId}/batch_events`: up to 10 events, each on one channel. */
export const PusherBatchBody = z.object({
  batch: z
    .array(
      z.object({
        name: eventName,
        data: z.string(),
        channel: channelName,
        socket_id: socketId.optional(),
        info: z.string().optional(),
      }),
    )
    .min(1)
    .max(HTTP_API_LIMITS.maxBatchSize),
});
export type PusherBatchBody = z.infer<typeof PusherBatchBody>;

/** What Pusher's HTTP API answers to a published event: an empty object. */
export const PusherPublishResponse = z.object({}).strict();

/** `POST /broadcasting/auth`, as pusher-js sends it (form-encoded) or as JSON. */
export const ChannelAuthBody = z.object({
  socket_id: socketId,
  channel_name: channelName,
});
export type ChannelAuthBody = z.infer<typeof ChannelAuthBody>;

/**
 * The signature pusher-js expects: `auth` is `key:hex HMAC-SHA256 of socket_id:channel_name:channel_data`;
 * `channel_data` is JSON text `{"user_id","exp","iat"}` that pusher-js hands back in `pusher:subscribe`.
 */
export const ChannelAuthResponse = z
  .object({
    auth: z.string().regex(/^[^:]+:[0-9a-f]{64}$/),
    channel_data: z.string(),
  })
  .strict();
export type ChannelAuthResponse = z.infer<typeof ChannelAuthResponse>;
