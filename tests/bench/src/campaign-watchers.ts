/**
 * Sockets for the `campaign` scenario: each holds either the campaign's channel or a few device channels, as
 * operators with the campaign view or device panels open. alarmcast's: channel-socket.ts, one `private-…`
 * subscription per channel, each authorized by `/broadcasting/auth`. The
 * Socket.IO peer's: one socket that asks to join each room (`watch` for a device, `watchCampaign` for the
 * campaign), which its server grants after the same checks.
 *
 * Frames are handed on with their event name and a lazy `data()`: 200 campaign sockets each get every
 * per-device change of the campaign, and the harness only parses the ones it measures.
 */
import { io } from 'socket.io-client';
import { channelSocketConnector } from './channel-socket.js';

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
  const connect = channelSocketConnector(options);
  return (userId, jwt, watch, onFrame) =>
    connect(userId, jwt, channelsOf(watch), (f) =>
      onFrame({
        event: f.event,
        data: () => JSON.parse(f.data) as Record<string, unknown>,
        at: f.at,
        wallAt: f.wallAt,
      }),
    );
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
