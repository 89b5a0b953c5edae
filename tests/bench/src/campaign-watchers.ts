/**
 * Sockets for the `campaign` scenario: each holds either the campaign's channel or a few device channels, as
 * operators with the campaign view or device panels open. alarmcast's: the lean client's handshake on a bare
 * `ws` socket, one `private-…` subscription per channel, each authorized by `/broadcasting/auth`. The
 * Socket.IO peer's: one socket that asks to join each room (`watch` for a device, `watchCampaign` for the
 * campaign), which its server grants after the same checks.
 *
 * Frames are handed on with their event name and a lazy `data()`: 200 campaign sockets each get every
 * per-device change of the campaign, and the harness only parses the ones it measures.
 */
import WebSocket from 'ws';
import { io } from 'socket.io-client';
import { authorize } from './lean-client.js';

export interface CampaignFrame {
  event: string;
  /** the event's data, parsed on demand */
  data: () => Record<string, unknown>;
  /** `performance.now()` and `Date.now()` of the harness as the frame arrived */
  at: number;
  wallAt: number;
}

/** What a socket watches: device channels, or the campaign channel. */
export type Watch = { devices: readonly number[] } | { campaign: string };

export type ConnectCampaignWatcher = (
  userId: number,
  jwt: string,
  watch: Watch,
  onFrame: (f: CampaignFrame) => void,
) => Promise<{ close: () => void }>;

const channelsOf = (w: Watch): string[] =>
  'campaign' in w ? [`private-campaign.${w.campaign}`] : w.devices.map((id) => `private-device.${id}`);

export function pusherCampaignWatcher(options: { edgeUrl: string; appKey: string }): ConnectCampaignWatcher {
  const wsUrl = `${options.edgeUrl.replace(/^http/, 'ws')}/app/${options.appKey}?protocol=7&client=js&version=8.6.0&flash=false`;
  const authEndpoint = `${options.edgeUrl}/broadcasting/auth`;
  return (userId, jwt, watch, onFrame) =>
    new Promise((resolve, reject) => {
      const ws = new WebSocket(wsUrl, { perMessageDeflate: false });
      const pending = new Set(channelsOf(watch));
      let ready = false;
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
              resolve({ close: () => ws.close() });
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
            onFrame({
              event: frame.event,
              data: () => JSON.parse(frame.data as string) as Record<string, unknown>,
              at,
              wallAt,
            });
        }
      });
    });
}

/** The peer's: a Socket.IO socket that joins each device's room (`watch`) or the campaign's (`watchCampaign`). */
export function socketIoCampaignWatcher(url: string): ConnectCampaignWatcher {
  return (userId, jwt, watch, onFrame) => {
    const socket = io(url, {
      transports: ['websocket'],
      auth: { token: jwt },
      reconnection: false,
      forceNew: true,
    });
    socket.onAny((event: string, data: Record<string, unknown>) => {
      onFrame({ event, data: () => data, at: performance.now(), wallAt: Date.now() });
    });
    const asks: [string, unknown][] =
      'campaign' in watch ? [['watchCampaign', watch.campaign]] : watch.devices.map((id) => ['watch', id]);
    return new Promise((resolve, reject) => {
      socket.once('connect_error', (err) => {
        socket.disconnect();
        reject(new Error(err.message));
      });
      socket.once('connect', () => {
        void Promise.all(
          asks.map(([event, arg]) =>
            (socket.timeout(60_000).emitWithAck(event, arg) as Promise<unknown>).then((ok) => {
              if (ok !== true) throw new Error(`user ${userId} may not ${event} ${String(arg)}`);
            }),
          ),
        ).then(
          () => resolve({ close: () => socket.disconnect() }),
          (err: Error) => {
            socket.disconnect();
            reject(err);
          },
        );
      });
    });
  };
}
