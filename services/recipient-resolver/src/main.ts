import { createLogger } from '@alarmcast/observability';
import { configOrExit, drainOnSignals } from '@alarmcast/service';
import { parseResolverConfig } from './config.js';
import { startResolver } from './resolver-process.js';

const config = configOrExit(() => parseResolverConfig(process.env));
const log = createLogger({ service: 'recipient-resolver', level: config.LOG_LEVEL });
const resolver = await startResolver(config, { logger: log });
// close() finishes the running jobs first.
drainOnSignals(log, () => resolver.close());
