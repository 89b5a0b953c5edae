/**
 * Device watchers for the `informs` scenario: sockets that each hold several device channels, as operators
 * with device pages open. Two implementations of one interface: alarmcast's (the lean Pusher client's
 * handshake on a bare `ws` socket, one `private-device.{id}` subscription per device, each authorized by
 * `/broadcasting/auth`) and the Socket.IO peer's (one socket, one `watch` per device, which the server
 * answers by joining the socket to the device's room after the same visibility check).
 */
import WebSocket from 'ws';
import { io } from 'socket.io-client';
import { deviceChannel } from '@alarmcast/contracts';
import { authorize } from './lean-client.js';

/** One `DeviceStatusChanged` frame as a watcher saw it. */
export interface StatusFrame {
  deviceId: number;
  /** the event's data, parsed: `{device, changed, snapshot?}` */
  data: { device: Record<string, unknown> & { id: number }; changed: string[]; snapshot?: boolean };
  /** `performance.now()` of the harness, taken as the frame arrived */
  at: number;
  /** `Date.now()` at the same moment, for deadlines the server states in wall-clock time */
  wallAt: number;
}

export interface Watcher {
  userId: number;
  deviceIds: readonly number[];
  close: () => void;
}

/**
 * Connects one socket for `userId` that watches `deviceIds`; resolves once every watch is in place (for
 * alarmcast: each subscription succeeded, its snapshot following), then reports every status frame.
 */
export type ConnectWatcher = (
  userId: number,
  jwt: string,
  deviceIds: readonly number[],
  onFrame: (f: StatusFrame) => void,
) => Promise<Watcher>;

const STATUS_EVENT = 'App\\Events\\DeviceStatusChanged';

export function pusherDeviceWatcher(options: { edgeUrl: string; appKey: string }): ConnectWatcher {
  const wsUrl = `${options.edgeUrl.replace(/^http/, 'ws')}/app/${options.appKey}?protocol=7&client=js&version=8.6.0&flash=false`;
  const authEndpoint = `${options.edgeUrl}/broadcasting/auth`;
  return (userId, jwt, deviceIds, onFrame) =>
    new Promise((resolve, reject) => {
      const ws = new WebSocket(wsUrl, { perMessageDeflate: false });
      const pending = new Set(deviceIds.map((id) => deviceChannel(id)));
      let ready = false;
      const fail = (err: Error) => {
        clearTimeout(timeout);
        ws.terminate();
        reject(err);
      };
      const timeout = setTimeout(
        () => fail(new Error(`user ${userId}: watches not ready within 60 s`)),
        60_000,
      );
      ws.on('error', (err) => {
        if (!ready) fail(err);
      });
      ws.on('close', (code) => {
        if (!ready) fail(new Error(`socket closed (${code}) before its watches were ready`));
      });
      ws.on('message', (raw: Buffer) => {
        const at = performance.now();
        const wallAt = Date.now();
        const frame = JSON.parse(raw.toString()) as { event: string; channel?: string; data?: unknown };
        switch (frame.event) {
          case 'pusher:connection_established': {
            const { socket_id } = JSON.parse(frame.data as string) as { socket_id: string };
            // Authorized one after the other per socket (2,000 sockets still authorize in parallel).
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
              resolve({ userId, deviceIds, close: () => ws.close() });
            }
            return;
          case 'pusher:ping':
            ws.send('{"event":"pusher:pong","data":{}}');
            return;
          case 'pusher:error':
            if (!ready) fail(new Error(`pusher:error ${JSON.stringify(frame.data)}`));
            return;
          case STATUS_EVENT: {
            const data = JSON.parse(frame.data as string) as StatusFrame['data'];
            onFrame({ deviceId: data.device.id, data, at, wallAt });
            return;
          }
          default:
        }
      });
    });
}

/** The peer's watcher: a Socket.IO socket that asks to watch each device (`watch`, acknowledged). */
export function socketIoDeviceWatcher(url: string): ConnectWatcher {
  return (userId, jwt, deviceIds, onFrame) => {
    const socket = io(url, {
      transports: ['websocket'],
      auth: { token: jwt },
      reconnection: false,
      forceNew: true,
    });
    socket.on(STATUS_EVENT, (data: StatusFrame['data']) => {
      const at = performance.now();
      onFrame({ deviceId: data.device.id, data, at, wallAt: Date.now() });
    });
    return new Promise((resolve, reject) => {
      socket.once('connect_error', (err) => {
        socket.disconnect();
        reject(new Error(err.message));
      });
      socket.once('connect', () => {
        void Promise.all(
          deviceIds.map(
            (id) =>
              socket
                .timeout(60_000)
                .emitWithAck('watch', id)
                .then((ok: unknown) => {
                  if (ok !== true) throw new Error(`user ${userId} may not watch device ${id}`);
                }) as Promise<void>,
          ),
        ).then(
          () => resolve({ userId, deviceIds, close: () => socket.disconnect() }),
          (err: Error) => {
            socket.disconnect();
            reject(err);
          },
        );
      });
    });
  };
}
