/**
 * Device watchers for the `informs` scenario: sockets that each hold several device channels, as operators
 * with device pages open. Two implementations of one interface: alarmcast's (channel-socket.ts: one
 * `private-device.{id}` subscription per device, each authorized by `/broadcasting/auth`) and the Socket.IO peer's (one socket, one `watch` per device, which the server
 * answers by joining the socket to the device's room after the same visibility check).
 */
import { io } from 'socket.io-client';
import { deviceChannel } from '@alarmcast/contracts';
import { channelSocketConnector } from './channel-socket.js';

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
  /** the Pusher socket id (alarmcast only) */
  socketId?: string;
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
  const connect = channelSocketConnector(options);
  return async (userId, jwt, deviceIds, onFrame) => {
    const socket = await connect(userId, jwt, deviceIds.map(deviceChannel), (f) => {
      if (f.event !== STATUS_EVENT) return;
      const data = JSON.parse(f.data) as StatusFrame['data'];
      onFrame({ deviceId: data.device.id, data, at: f.at, wallAt: f.wallAt });
    });
    return { userId, deviceIds, close: socket.close, socketId: socket.socketId };
  };
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
