import { createLogger } from '@alarmcast/observability';
import { configOrExit, drainOnSignals } from '@alarmcast/service';
import { parseIngestConfig } from './config.js';
import { startIngest } from './server.js';

const config = configOrExit(() => parseIngestConfig(process.env));
const log = createLogger({ service: 'alarm-ingest', level: config.LOG_LEVEL });
const server = await startIngest(config, { logger: log });
log.info(`alarm-ingest ready on ${server.url} (POST /v1/alarms)`);
drainOnSignals(log, () => server.close());
