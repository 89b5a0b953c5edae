import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Pusher private-channel authorization: `auth` is `<app key>:<hex HMAC-SHA256(secret, "socket_id:channel")>`,
 * or, when the answer carries `channel_data` (presence channels; alarmcast puts the subscription's owner
 * there for every channel), HMAC over `"socket_id:channel:channel_data"`. pusher-js sends `channel_data` back
 * verbatim in `pusher:subscribe`, so the edge recomputes the signature there and only a subscription signed
 * by /broadcasting/auth (or another holder of the app secret) succeeds.
 */
export function signChannelAuth(
  appKey: string,
  appSecret: string,
  socketId: string,
  channel: string,
  channelData?: string,
): string {
  const message =
    channelData === undefined ? `${socketId}:${channel}` : `${socketId}:${channel}:${channelData}`;
  return `${appKey}:${hmacHex(appSecret, message)}`;
}

export function verifyChannelAuth(
  appKey: string,
  appSecret: string,
  socketId: string,
  channel: string,
  auth: unknown,
  channelData?: string,
): boolean {
  if (typeof auth !== 'string') return false;
  return constantTimeEqual(auth, signChannelAuth(appKey, appSecret, socketId, channel, channelData));
}

export function hmacHex(secret: string, message: string): string {
  return createHmac('sha256', secret).update(message).digest('hex');
}

/** Compares without leaking where two strings first differ. */
export function constantTimeEqual(a: string, b: string): boolean {
  const ab = Buffer.from(a);
  const bb = Buffer.from(b);
  return ab.length === bb.length && timingSafeEqual(ab, bb);
}
