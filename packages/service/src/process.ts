import { ConfigError } from './env.js';

interface Log {
  info: (obj: object, msg: string) => void;
  error: (obj: object, msg: string) => void;
}

/**
 * A service's configuration at boot: `parse` (the service's parseEnv) or, on a ConfigError, its message on
 * stderr and exit code 1. Plain text, not a JSON log line: whoever is deploying reads it before any log
 * pipeline matters.
 */
export function configOrExit<T>(parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(err.message);
    process.exit(1);
  }
}

/**
 * The one shutdown sequence: on the first SIGTERM or SIGINT, log it, run `drain` (stop accepting, finish
 * what is in flight, close connections: each service's own `close`) and exit 0, or 1 if draining failed.
 * Later signals while draining are ignored, so a second Ctrl-C does not cut the drain short.
 */
export function drainOnSignals(log: Log, drain: () => Promise<void>): void {
  let draining = false;
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      if (draining) return;
      draining = true;
      log.info({ signal }, 'draining');
      drain().then(
        () => process.exit(0),
        (err: unknown) => {
          log.error({ err }, 'error while draining');
          process.exit(1);
        },
      );
    });
  }
}
