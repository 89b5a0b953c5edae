import { createLogger } from '@alarmcast/observability';
import { ConfigError, DEV_DEFAULTS, parseEdgeConfig } from './config.js';
import { startEdge } from './server.js';

let config;
try {
  config = parseEdgeConfig(process.env);
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  // Plain stderr, not JSON: this is read by whoever is deploying, before any log pipeline matters.
  console.error(err.message);
  process.exit(1);
}

const log = createLogger({ service: 'ws-edge', level: config.logLevel });
if (config.defaultsUsed.length > 0) {
  log.warn(
    Object.fromEntries(config.defaultsUsed.map((name) => [name, DEV_DEFAULTS[name]])),
    'using local development credentials (refused with NODE_ENV=production)',
  );
}

const edge = await startEdge(config, { logger: log });
const wsUrl = edge.url.replace(/^http/, 'ws');
log.info(
  {
    websocket: `${wsUrl}/app/${config.app.key}?protocol=7`,
    channelAuth: `${edge.url}/broadcasting/auth`,
    health: `${edge.url}/healthz`,
    metrics: `${edge.internalUrl}/metrics`,
  },
  'ws-edge listening',
);

let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'draining');
    edge.close().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'unclean shutdown');
        process.exit(1);
      },
    );
  });
}
