import { Counter, Gauge, createMetricsRegistry, type Registry } from '@alarmcast/observability';

export interface EdgeMetrics {
  registry: Registry;
  messagesDelivered: Counter<never>;
  framesDropped: Counter<'reason'>;
  subscriptionsRefused: Counter<'reason'>;
  channelAuth: Counter<'outcome'>;
  httpApiRequests: Counter<'outcome'>;
  httpApiEvents: Counter<'outcome'>;
  clientEvents: Counter<'outcome'>;
  resumes: Counter<'outcome'>;
}

/** Live counts are read from the node's own state at scrape time, so they can never drift from it. */
export interface EdgeGaugeSources {
  connections: () => number;
  subscriptions: () => number;
  redisChannels: () => number;
}

export function createEdgeMetrics(sources: EdgeGaugeSources): EdgeMetrics {
  const registry = createMetricsRegistry('ws-edge');
  const gauge = (name: string, help: string, read: () => number): void => {
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read());
      },
    });
  };
  gauge('ws_edge_connections', 'Open WebSocket connections on this node', sources.connections);
  gauge(
    'ws_edge_subscriptions',
    'Channel subscriptions (socket x channel) on this node',
    sources.subscriptions,
  );
  gauge('ws_edge_redis_channels', 'Redis pub/sub channels this node is subscribed to', sources.redisChannels);
  return {
    registry,
    messagesDelivered: new Counter({
      name: 'ws_edge_messages_delivered_total',
      help: 'Channel event frames handed to sockets (one per socket per event)',
      registers: [registry],
    }),
    framesDropped: new Counter({
      name: 'ws_edge_frames_dropped_total',
      help: 'Frames not processed or not delivered, by reason (bad client frames, bad pub/sub messages, slow sockets)',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    subscriptionsRefused: new Counter({
      name: 'ws_edge_subscriptions_refused_total',
      help: 'pusher:subscribe requests refused, by reason',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    channelAuth: new Counter({
      name: 'ws_edge_channel_auth_total',
      help: 'POST /broadcasting/auth requests by outcome',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    httpApiRequests: new Counter({
      name: 'ws_edge_http_api_requests_total',
      help: 'Pusher HTTP API publish requests (events, batch_events) by outcome',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    httpApiEvents: new Counter({
      name: 'ws_edge_http_api_events_total',
      help: 'Channel events from the HTTP API: published on Redis, or skipped (a channel no socket can hold)',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    clientEvents: new Counter({
      name: 'ws_edge_client_events_total',
      help: 'client-* events from sockets by outcome (published, or why refused)',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    resumes: new Counter({
      name: 'ws_edge_resumes_total',
      help: 'Subscriptions that resumed from a last_event_id: complete, or why the client must reload',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
  };
}
