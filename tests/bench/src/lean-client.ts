/**
 * A lean benchmark client for alarmcast's edge: the same Pusher protocol 7 handshake, channel authorization
 * and subscribe that pusher-js performs, on a bare `ws` socket, so that one process can hold 10,000 of them.
 * pusher-js keeps timers, a state machine and a channel registry per connection; none of that changes what
 * the server sends or when, and the `equivalence` scenario checks that both clients receive the same frames.
 *
 * What pusher-js does and this client does too:
 *  - connects to `/app/{key}?protocol=7&client=js&version=...`, waits for `pusher:connection_established`;
 *  - POSTs `socket_id` + `channel_name` form-encoded to the auth endpoint with the user's bearer token;
 *  - sends `pusher:subscribe` with the returned `auth` and `channel_data` (which the signature covers),
 *    waits for `pusher_internal:subscription_succeeded`;
 *  - answers `pusher:ping` with `pusher:pong`;
 *  - for every other event frame on the channel, parses `data` (a JSON string) and hands it on.
 */
import WebSocket from 'ws';
import { userChannel } from '@alarmcast/contracts';
import type { ConnectUser, Delivery } from './delivery.js';

interface Frame {
  event: string;
  channel?: string;
  data?: unknown;
}

export interface LeanClientOptions {
  /** the edge's base URL, e.g. `http://127.0.0.1:6001` */
  edgeUrl: string;
  appKey: string;
  /** @defaultValue `${edgeUrl}/broadcasting/auth` */
  authEndpoint?: string;
}

export function leanPusherClient(options: LeanClientOptions): ConnectUser {
  const wsUrl = `${options.edgeUrl.replace(/^http/, 'ws')}/app/${options.appKey}?protocol=7&client=js&version=8.6.0&flash=false`;
  const authEndpoint = options.authEndpoint ?? `${options.edgeUrl}/broadcasting/auth`;

  return (userId, jwt, onDelivery) =>
    new Promise((resolve, reject) => {
      const channel = userChannel(userId);
      const ws = new WebSocket(wsUrl, { perMessageDeflate: false });
      let subscribed = false;
      const fail = (err: Error) => {
        clearTimeout(timeout);
        ws.terminate();
        reject(err);
      };
      // A benchmark must end by itself, even against an edge that never answers.
      const timeout = setTimeout(() => fail(new Error('no subscription within 30 s')), 30_000);
      ws.on('error', (err) => {
        if (!subscribed) fail(err);
      });
      ws.on('close', (code) => {
        if (!subscribed) fail(new Error(`socket closed (${code}) before the subscription succeeded`));
      });
      ws.on('message', (raw: Buffer) => {
        const at = performance.now();
        const frame = JSON.parse(raw.toString()) as Frame;
        switch (frame.event) {
          case 'pusher:connection_established': {
            const { socket_id } = JSON.parse(frame.data as string) as { socket_id: string };
            authorize(authEndpoint, jwt, socket_id, channel).then(
              (answer) =>
                ws.send(JSON.stringify({ event: 'pusher:subscribe', data: { ...answer, channel } })),
              fail,
            );
            return;
          }
          case 'pusher_internal:subscription_succeeded':
            subscribed = true;
            clearTimeout(timeout);
            resolve({ userId, close: () => ws.close() });
            return;
          case 'pusher:ping':
            ws.send('{"event":"pusher:pong","data":{}}');
            return;
          case 'pusher:error':
            if (!subscribed) fail(new Error(`pusher:error ${JSON.stringify(frame.data)}`));
            return;
          default:
            if (frame.channel !== channel) return;
            onDelivery({
              event: frame.event,
              data: JSON.parse(frame.data as string) as Delivery['data'],
              at,
            });
        }
      });
    });
}

/** The channel authorization pusher-js performs: `socket_id` and `channel_name` to the auth endpoint. */
export async function authorize(
  endpoint: string,
  jwt: string,
  socketId: string,
  channel: string,
): Promise<{ auth: string; channel_data?: string }> {
  const res = await fetch(endpoint, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${jwt}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({ socket_id: socketId, channel_name: channel }).toString(),
  });
  if (!res.ok) throw new Error(`channel auth answered ${res.status}: ${await res.text()}`);
  // As pusher-js: both fields back verbatim (channel_data names the subscription's owner and JWT expiry).
  const { auth, channel_data } = (await res.json()) as { auth: string; channel_data?: string };
  return channel_data === undefined ? { auth } : { auth, channel_data };
}
