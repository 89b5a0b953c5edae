import { createLogger } from '@alarmcast/observability';
import { configOrExit, drainOnSignals } from '@alarmcast/service';
import { DEV_DEFAULTS, parseEdgeConfig } from './config.js';
import { startEdge } from './server.js';

const config = configOrExit(() => parseEdgeConfig(process.env));

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

drainOnSignals(log, () => edge.close());
