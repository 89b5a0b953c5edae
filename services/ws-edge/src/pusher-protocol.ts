import { z } from 'zod';
import { PUSHER_CHANNEL_NAME, RESUME_FIELD } from '@alarmcast/contracts';
import { escapedUserCopy } from '@alarmcast/redis';
import type { PusherCode } from './close-codes.js';

/**
 * Pusher Channels protocol v7, the frames this edge reads and writes. Server-to-client `data` is a JSON
 * *string* (pusher-js parses it a second time), which is also how Laravel and Reverb send it; client-to-server
 * `data` is a plain object.
 */

const Envelope = z.object({
  event: z.string().min(1).max(200),
  data: z.unknown().optional(),
  channel: z.string().max(200).optional(),
});

const channelName = z.string().regex(PUSHER_CHANNEL_NAME);
const SubscribeData = z.object({
  channel: channelName,
  // hex HMAC-SHA256 plus the app key: ~170 bytes; the bound only keeps garbage out of the comparison
  auth: z.string().max(512).optional(),
  channel_data: z.string().max(10_000).optional(),
  // alarmcast's resume extension (packages/contracts/src/resume.ts); legacy clients never send it.
  [RESUME_FIELD]: z.string().max(64).optional(),
});
const UnsubscribeData = z.object({ channel: channelName });

export type ClientFrame =
  | { kind: 'ping' }
  | { kind: 'pong' }
  | {
      kind: 'subscribe';
      channel: string;
      auth: string | undefined;
      lastEventId: string | undefined;
      /** the `channel_data` of the auth answer, signed with the channel (revocation.ts) */
      channelData: string | undefined;
    }
  | { kind: 'unsubscribe'; channel: string }
  /** `client-*`: a client broadcasting to a channel's other members; `data` as the client sent it */
  | { kind: 'client-event'; event: string; channel: string | undefined; data: unknown }
  /** neither `pusher:` nor `client-`: ignored, as Reverb does */
  | { kind: 'ignored'; event: string }
  | { kind: 'invalid'; reason: InvalidReason; message: string };

export type InvalidReason = 'binary' | 'too_large' | 'json' | 'shape' | 'unknown_event';

/** Reverb's answer to anything it cannot handle (`Server::error`); the socket stays open. */
const INVALID_FORMAT = 'Invalid message format';

/**
 * Decodes one client frame. Never throws: every way a frame can be wrong maps to `invalid`, which the
 * connection answers with `pusher:error` and otherwise ignores.
 */
export function decodeClientFrame(payload: Buffer, isBinary: boolean, maxBytes: number): ClientFrame {
  if (isBinary) return { kind: 'invalid', reason: 'binary', message: INVALID_FORMAT };
  if (payload.byteLength > maxBytes) {
    return { kind: 'invalid', reason: 'too_large', message: `Message exceeds the ${maxBytes} byte limit` };
  }
  let json: unknown;
  try {
    json = JSON.parse(payload.toString('utf8'));
  } catch {
    return { kind: 'invalid', reason: 'json', message: INVALID_FORMAT };
  }
  const envelope = Envelope.safeParse(json);
  if (!envelope.success) return { kind: 'invalid', reason: 'shape', message: INVALID_FORMAT };
  const { event, data, channel } = envelope.data;

  switch (event) {
    case 'pusher:ping':
      return { kind: 'ping' };
    case 'pusher:pong':
      return { kind: 'pong' };
    case 'pusher:subscribe': {
      const d = SubscribeData.safeParse(data);
      return d.success
        ? {
            kind: 'subscribe',
            channel: d.data.channel,
            auth: d.data.auth,
            lastEventId: d.data[RESUME_FIELD],
            channelData: d.data.channel_data,
          }
        : { kind: 'invalid', reason: 'shape', message: INVALID_FORMAT };
    }
    case 'pusher:unsubscribe': {
      const d = UnsubscribeData.safeParse(data);
      return d.success
        ? { kind: 'unsubscribe', channel: d.data.channel }
        : { kind: 'invalid', reason: 'shape', message: INVALID_FORMAT };
    }
  }
  if (event.startsWith('pusher:'))
    return { kind: 'invalid', reason: 'unknown_event', message: INVALID_FORMAT };
  if (event.startsWith('client-')) return { kind: 'client-event', event, channel, data };
  return { kind: 'ignored', event };
}

/** Frames the server sends, serialized. */
export const serverFrames = {
  connectionEstablished: (socketId: string, activityTimeoutS: number): string =>
    JSON.stringify({
      event: 'pusher:connection_established',
      data: JSON.stringify({ socket_id: socketId, activity_timeout: activityTimeoutS }),
    }),
  ping: (): string => JSON.stringify({ event: 'pusher:ping', data: '{}' }),
  pong: (): string => JSON.stringify({ event: 'pusher:pong', data: '{}' }),
  subscriptionSucceeded: (channel: string): string =>
    JSON.stringify({ event: 'pusher_internal:subscription_succeeded', channel, data: '{}' }),
  /** Pusher leaves `code` out of errors that are not connection-level; pusher-js only reports either kind. */
  error: (code: PusherCode | null, message: string): string =>
    JSON.stringify({ event: 'pusher:error', data: JSON.stringify({ code, message }) }),
  /** An event on a channel. `data` is already a JSON string and goes out byte for byte. */
  channelEvent: (channel: string, event: string, data: string): string =>
    JSON.stringify({ event, channel, data }),
  /**
   * The frames of one event's per-user copies (a `user-batch` envelope), byte for byte what
   * `channelEvent(channel, event, dataHead + '"event_id":"<id>"}')` gives, with the escaping done once per
   * event instead of once per user. `channel` and `eventId` must need no JSON escaping (a user channel
   * name, a stream id: the envelope schema guarantees both).
   */
  userCopies: (event: string, dataHead: string): ((channel: string, eventId: string) => string) => {
    const [before, after] = escapedUserCopy(dataHead);
    const start = `{"event":${JSON.stringify(event)},"channel":"`;
    const data = `","data":"${before}`;
    const end = `${after}"}`;
    return (channel, eventId) => `${start}${channel}${data}${eventId}${end}`;
  },
};

export const ERROR_MESSAGES = {
  unauthorized: 'Connection is unauthorized',
  presenceUnsupported: 'Presence channels are not supported',
  publicUnsupported:
    'Only private channels are served; subscribe to private-user.{id} or private-tenant.{id}',
  unknownChannel: 'Unknown channel',
  /** Reverb's words for a client event on a channel the socket has not joined */
  clientEventNotMember: 'The client is not a member of the specified channel.',
  clientEventsRefused:
    'Client events are only accepted on private-user channels; tenant channels are server-to-client only',
  /** Pusher's words when a socket sends client events faster than its limit */
  clientEventRateLimited: (perSecond: number): string =>
    `Client event rejected - only ${perSecond} events per second`,
} as const;
