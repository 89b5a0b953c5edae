import { createLogger } from '@alarmcast/observability';
import { configOrExit, runWorkers } from '@alarmcast/service';
import { DEV_DEFAULTS, parseEdgeConfig } from './config.js';
import { startEdge } from './server.js';

const config = configOrExit(() => parseEdgeConfig(process.env));

const log = createLogger({ service: 'ws-edge', level: config.logLevel });

// EDGE_WORKERS: one edge per core behind one port (the primary hands out connections); 1: this process.
await runWorkers({
  service: 'ws-edge',
  count: config.workers,
  log,
  internal: { host: config.host, port: config.internalPort, ...config.httpTimeouts },
  start: async (worker) => {
    const workerLog = worker ? log.child({ worker: worker.index }) : log;
    if (config.defaultsUsed.length > 0 && (worker?.index ?? 1) === 1) {
      workerLog.warn(
        Object.fromEntries(config.defaultsUsed.map((name) => [name, DEV_DEFAULTS[name]])),
        'using local development credentials (refused with NODE_ENV=production)',
      );
    }
    const edge = await startEdge(config, { logger: workerLog, internalServer: !worker, worker });
    const wsUrl = edge.url.replace(/^http/, 'ws');
    workerLog.info(
      {
        websocket: `${wsUrl}/app/${config.app.key}?protocol=7`,
        channelAuth: `${edge.url}/broadcasting/auth`,
        health: `${edge.url}/healthz`,
        ...(edge.internalUrl ? { metrics: `${edge.internalUrl}/metrics` } : {}),
      },
      'ws-edge listening',
    );
    return edge;
  },
});
