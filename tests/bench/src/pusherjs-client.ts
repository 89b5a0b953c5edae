/** pusher-js 8.6 itself as a benchmark client: the reference the lean client is checked against. */
import { Pusher } from '@alarmcast/e2e/stack';
import { userChannel } from '@alarmcast/contracts';
import type { ConnectUser, Delivery } from './delivery.js';

export function pusherJsClient(options: { edgeUrl: string; appKey: string }): ConnectUser {
  const { hostname, port } = new URL(options.edgeUrl);
  return async (userId, jwt, onDelivery) => {
    const pusher = new Pusher(options.appKey, {
      cluster: 'mt1',
      wsHost: hostname,
      wsPort: Number(port),
      forceTLS: false,
      enabledTransports: ['ws'],
      disableStats: true,
      channelAuthorization: {
        endpoint: `${options.edgeUrl}/broadcasting/auth`,
        transport: 'ajax',
        headers: { Authorization: `Bearer ${jwt}` },
      },
    });
    const channel = pusher.subscribe(userChannel(userId));
    // pusher-js hands over parsed data; `at` is taken in its callback, after its own parsing.
    channel.bind_global((event: string, data: unknown) => {
      const at = performance.now();
      if (event.startsWith('pusher:') || event.startsWith('pusher_internal:')) return;
      onDelivery({ event, data: data as Delivery['data'], at });
    });
    await new Promise<void>((resolve, reject) => {
      channel.bind('pusher:subscription_succeeded', () => resolve());
      channel.bind('pusher:subscription_error', (err: unknown) =>
        reject(new Error(`subscription failed: ${JSON.stringify(err)}`)),
      );
    });
    return { userId, close: () => pusher.disconnect() };
  };
}
