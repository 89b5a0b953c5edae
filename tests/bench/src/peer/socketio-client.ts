import { io } from 'socket.io-client';
import type { ConnectUser, Delivery } from '../delivery.js';

/**
 * The Socket.IO peer's client: one socket per user, authorized by its JWT in the handshake; the server puts
 * it in the user's room before the connect completes, so nothing is subscribed afterwards.
 */
export function connectSocketIoUser(url: string): ConnectUser {
  return (userId, jwt, onDelivery) => {
    const socket = io(url, {
      transports: ['websocket'],
      auth: { token: jwt },
      // A benchmark socket that drops must show up as lost deliveries, not be quietly replaced.
      reconnection: false,
      forceNew: true,
    });
    socket.onAny((event: string, data: Delivery['data']) => {
      const at = performance.now();
      onDelivery({ event, data, at });
    });
    return new Promise((resolve, reject) => {
      socket.once('connect', () => resolve({ userId, close: () => socket.disconnect() }));
      socket.once('connect_error', (err) => {
        socket.disconnect();
        reject(new Error(err.message));
      });
    });
  };
}
