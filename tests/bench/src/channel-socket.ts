/**
 * One bare `ws` socket speaking the Pusher protocol as the lean client does (lean-client.ts), holding several
 * private channels: each authorized by `/broadcasting/auth` one after the other (many sockets still
 * authorize in parallel), `pusher:subscribe`d, pings answered. Resolves once every subscription succeeded;
 * hands on every non-protocol frame with its raw `data` text and the harness' clocks at its arrival. The
 * watchers of the `informs` and `campaign` scenarios are built on it.
 */
import WebSocket from 'ws';
import { authorize } from './lean-client.js';

export interface ChannelFrame {
  event: string;
  /** the frame's `data`, as sent (a JSON text) */
  data: string;
  /** `performance.now()` and `Date.now()` of the harness as the frame arrived */
  at: number;
  wallAt: number;
}

export function channelSocketConnector(options: { edgeUrl: string; appKey: string }) {
  const wsUrl = `${options.edgeUrl.replace(/^http/, 'ws')}/app/${options.appKey}?protocol=7&client=js&version=8.6.0&flash=false`;
  const authEndpoint = `${options.edgeUrl}/broadcasting/auth`;
  return (
    userId: number,
    jwt: string,
    channels: readonly string[],
    onFrame: (f: ChannelFrame) => void,
  ): Promise<{ close: () => void; socketId: string }> =>
    new Promise((resolve, reject) => {
      const ws = new WebSocket(wsUrl, { perMessageDeflate: false });
      const pending = new Set(channels);
      let ready = false;
      let socketId = '';
      const fail = (err: Error) => {
        clearTimeout(timeout);
        ws.terminate();
        reject(err);
      };
      const timeout = setTimeout(() => fail(new Error(`user ${userId}: not subscribed within 60 s`)), 60_000);
      ws.on('error', (err) => {
        if (!ready) fail(err);
      });
      ws.on('close', (code) => {
        if (!ready) fail(new Error(`socket closed (${code}) before its subscriptions were ready`));
      });
      ws.on('message', (raw: Buffer) => {
        const at = performance.now();
        const wallAt = Date.now();
        const frame = JSON.parse(raw.toString()) as { event: string; channel?: string; data?: unknown };
        switch (frame.event) {
          case 'pusher:connection_established': {
            const { socket_id } = JSON.parse(frame.data as string) as { socket_id: string };
            socketId = socket_id;
            void (async () => {
              for (const channel of pending) {
                const answer = await authorize(authEndpoint, jwt, socket_id, channel);
                ws.send(JSON.stringify({ event: 'pusher:subscribe', data: { ...answer, channel } }));
              }
            })().catch(fail);
            return;
          }
          case 'pusher_internal:subscription_succeeded':
            pending.delete(frame.channel ?? '');
            if (pending.size === 0 && !ready) {
              ready = true;
              clearTimeout(timeout);
              resolve({ close: () => ws.close(), socketId });
            }
            return;
          case 'pusher:ping':
            ws.send('{"event":"pusher:pong","data":{}}');
            return;
          case 'pusher:error':
            if (!ready) fail(new Error(`pusher:error ${JSON.stringify(frame.data)}`));
            return;
          default:
            if (frame.event.startsWith('pusher')) return;
            onFrame({ event: frame.event, data: frame.data as string, at, wallAt });
        }
      });
    });
}
