import { createLogger } from '@alarmcast/observability';
import { parseResolverConfig } from './config.js';
import { startResolver } from './resolver-process.js';

const config = parseResolverConfig(process.env);
const log = createLogger({ service: 'recipient-resolver', level: config.LOG_LEVEL });
const resolver = await startResolver(config, { logger: log });

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    log.info({ signal }, 'draining: finishing running jobs');
    resolver.close().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'error while draining');
        process.exit(1);
      },
    );
  });
}
