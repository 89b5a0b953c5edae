import { createLogger } from '@alarmcast/observability';
import { parseIngestConfig } from './config.js';
import { startIngest } from './server.js';

const config = parseIngestConfig(process.env);
const log = createLogger({ service: 'alarm-ingest', level: config.LOG_LEVEL });
const server = await startIngest(config, { logger: log });
log.info(`alarm-ingest ready on ${server.url} (POST /v1/alarms)`);

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    log.info({ signal }, 'draining');
    server.close().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'error while draining');
        process.exit(1);
      },
    );
  });
}
