import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Pusher private-channel authorization: `auth` is `<app key>:<hex HMAC-SHA256(secret, "socket_id:channel")>`.
 * The edge recomputes it on `pusher:subscribe`, so only a subscription signed by /broadcasting/auth succeeds.
 */
export function signChannelAuth(
  appKey: string,
  appSecret: string,
  socketId: string,
  channel: string,
): string {
  return `${appKey}:${hmacHex(appSecret, `${socketId}:${channel}`)}`;
}

export function verifyChannelAuth(
  appKey: string,
  appSecret: string,
  socketId: string,
  channel: string,
  auth: unknown,
): boolean {
  if (typeof auth !== 'string') return false;
  return constantTimeEqual(auth, signChannelAuth(appKey, appSecret, socketId, channel));
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
