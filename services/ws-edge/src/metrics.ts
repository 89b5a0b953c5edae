import { Counter, Gauge, Histogram, createMetricsRegistry, type Registry } from '@alarmcast/observability';
import type { AuthOutcome } from './channel-auth.js';
import { PUSHER_CODES } from './close-codes.js';

export interface EdgeMetrics {
  registry: Registry;
  messagesDelivered: Counter<never>;
  messagesReceived: Counter<never>;
  bytesSent: Counter<never>;
  bytesReceived: Counter<never>;
  closes: Counter<'code'>;
  pubsubLag: Histogram<never>;
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
  /** socket x channel pairs per channel kind (`user`, `tenant`, ...) */
  subscriptionsByKind: () => Map<string, number>;
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
  new Gauge({
    name: 'ws_edge_subscriptions',
    help: 'Channel subscriptions (socket x channel) on this node, by channel kind (user, tenant, ...)',
    labelNames: ['kind'] as const,
    registers: [registry],
    collect() {
      // A kind whose last subscription ended reads 0 rather than keeping its last count.
      const byKind = sources.subscriptionsByKind();
      for (const kind of CHANNEL_KINDS) this.set({ kind }, byKind.get(kind) ?? 0);
      for (const [kind, n] of byKind) this.set({ kind }, n);
    },
  });
  gauge('ws_edge_redis_channels', 'Redis pub/sub channels this node is subscribed to', sources.redisChannels);
  const metrics: EdgeMetrics = {
    registry,
    messagesDelivered: new Counter({
      name: 'ws_edge_messages_delivered_total',
      help: 'Channel event frames handed to sockets (one per socket per event)',
      registers: [registry],
    }),
    messagesReceived: new Counter({
      name: 'ws_edge_messages_received_total',
      help: 'Frames received from client sockets (any kind, valid or not)',
      registers: [registry],
    }),
    bytesSent: new Counter({
      name: 'ws_edge_bytes_sent_total',
      help: 'Bytes of frames written to client sockets (payload, without WebSocket framing)',
      registers: [registry],
    }),
    bytesReceived: new Counter({
      name: 'ws_edge_bytes_received_total',
      help: 'Bytes of frames received from client sockets (payload, without WebSocket framing)',
      registers: [registry],
    }),
    closes: new Counter({
      name: 'ws_edge_closes_total',
      help: 'Closed sockets by close code (4100 slow consumer, 4200 drain, 4009 revocation, 4203 expiry; codes outside the known set count as other)',
      labelNames: ['code'] as const,
      registers: [registry],
    }),
    pubsubLag: new Histogram({
      name: 'ws_edge_pubsub_lag_seconds',
      help: "Time from an event's append to the user log (its event_id) to its arrival at this edge over pub/sub",
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
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
  // Known label values start at 0, so that rates and alerts over them have series before the first event.
  for (const code of ALERTED_CLOSE_CODES) metrics.closes.inc({ code: String(code) }, 0);
  for (const outcome of AUTH_OUTCOMES) metrics.channelAuth.inc({ outcome }, 0);
  for (const outcome of RESUME_OUTCOMES) metrics.resumes.inc({ outcome }, 0);
  for (const reason of DROP_REASONS) metrics.framesDropped.inc({ reason }, 0);
  return metrics;
}

/** Channel kinds always reported by `ws_edge_subscriptions` (0 when none is held). */
const CHANNEL_KINDS = ['user', 'tenant'] as const;

/** Close codes the alert rules watch (infra/prometheus/alerts.yml): slow consumer, drain, revocation, expiry. */
const ALERTED_CLOSE_CODES = [
  PUSHER_CODES.overCapacity,
  PUSHER_CODES.reconnect,
  PUSHER_CODES.unauthorized,
  PUSHER_CODES.tokenExpired,
] as const;

const AUTH_OUTCOMES = ['granted', 'unauthenticated', 'forbidden', 'invalid'] as const satisfies AuthOutcome[];

const RESUME_OUTCOMES = [
  'complete',
  'log_expired',
  'log_trimmed',
  'log_recreated',
  'unknown_position',
  'event_expired',
  'too_many_events',
  'log_unavailable',
] as const;

const DROP_REASONS = [
  'binary',
  'too_large',
  'json',
  'shape',
  'unknown_event',
  'malformed_envelope',
  'channel_mismatch',
  'no_local_member',
  'slow_consumer',
] as const;

/**
 * Close codes counted by their number; any other code (a client may close with any code from 1000 to 4999)
 * counts as `other`, so the label stays bounded.
 */
const KNOWN_CLOSE_CODES = new Set<number>([
  1000,
  1001,
  1005,
  1006,
  1009,
  1011,
  ...Object.values(PUSHER_CODES),
]);

export function closeCodeLabel(code: number): string {
  return KNOWN_CLOSE_CODES.has(code) ? String(code) : 'other';
}
