import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

export interface LoggerOptions {
  /** service name, on every line */
  service: string;
  /** @defaultValue 'info' */
  level?: string;
}

/** JSON lines on stdout, one logger per process; children add context (`log.child({ socketId })`). */
export function createLogger(options: LoggerOptions): Logger {
  return pino({ name: options.service, level: options.level ?? 'info', base: { service: options.service } });
}
