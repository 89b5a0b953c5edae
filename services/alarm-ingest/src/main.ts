import { createLogger } from '@alarmcast/observability';
import { configOrExit, runWorkers } from '@alarmcast/service';
import { parseIngestConfig } from './config.js';
import { startIngest } from './server.js';

const config = configOrExit(() => parseIngestConfig(process.env));
const log = createLogger({ service: 'alarm-ingest', level: config.LOG_LEVEL });

// INGEST_WORKERS: one ingest per core behind one port (the primary hands out connections); 1: this process.
await runWorkers({
  service: 'alarm-ingest',
  count: config.INGEST_WORKERS,
  log,
  internal: {
    host: config.HOST,
    port: config.INGEST_INTERNAL_PORT,
    headersTimeoutMs: config.HTTP_HEADERS_TIMEOUT_MS,
    requestTimeoutMs: config.HTTP_REQUEST_TIMEOUT_MS,
  },
  start: async (worker) => {
    const workerLog = worker ? log.child({ worker: worker.index }) : log;
    const server = await startIngest(config, { logger: workerLog, internalServer: !worker });
    workerLog.info(`alarm-ingest ready on ${server.url} (POST /v1/alarms)`);
    return server;
  },
});
