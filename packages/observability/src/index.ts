export { createLogger, type Logger, type LoggerOptions } from './logger.js';
export {
  createMetricsRegistry,
  instrumentBreaker,
  AggregatorRegistry,
  Registry,
  Counter,
  Gauge,
  Histogram,
} from './metrics.js';
