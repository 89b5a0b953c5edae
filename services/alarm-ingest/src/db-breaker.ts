import CircuitBreaker from 'opossum';
import { ApiError } from '@alarmcast/http';

/**
 * Errors that mean "Postgres is not there" rather than "this query is wrong": refused or reset
 * connections, pool timeouts, a server restarting. Only these open the breaker and answer 503.
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 5; depth++) {
    const { code, message } = e as { code?: unknown; message?: unknown };
    if (
      typeof code === 'string' &&
      /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|ENOTFOUND|EAI_AGAIN|57P0[1-3]|08\d{3}|P1001|P1002|P1017|P2024)$/.test(
        code,
      )
    ) {
      return true;
    }
    if (
      typeof message === 'string' &&
      /ECONNREFUSED|Connection terminated|timeout exceeded when trying to connect|terminating connection|database system is (starting up|shutting down)|Can't reach database|Connection ended unexpectedly/i.test(
        message,
      )
    ) {
      return true;
    }
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

export type DbCall = <T>(op: () => Promise<T>) => Promise<T>;

export interface DbBreakerOptions {
  /** @defaultValue 5000 ms: a query slower than this counts as a failure */
  timeoutMs?: number;
  /** @defaultValue 5000 ms open before a trial call is let through */
  resetTimeoutMs?: number;
  /** seconds in Retry-After while open */
  retryAfterS: number;
}

/**
 * Every Postgres call of a request goes through one opossum breaker. While Postgres is down, callers get a
 * 503 with Retry-After at once instead of piling up on a pool that cannot connect; a trial call every few
 * seconds closes it again. Application errors (constraint violations...) pass through and do not count.
 */
export function createDbBreaker(options: DbBreakerOptions): { call: DbCall; breaker: CircuitBreaker } {
  const breaker = new CircuitBreaker(async (op: () => Promise<unknown>) => op(), {
    timeout: options.timeoutMs ?? 5000,
    resetTimeout: options.resetTimeoutMs ?? 5000,
    errorThresholdPercentage: 50,
    volumeThreshold: 3,
    rollingCountTimeout: 10_000,
    // true = "not a failure": only outages count against the breaker.
    errorFilter: (err: unknown) => !isDatabaseUnavailable(err),
  });
  const call: DbCall = async <T>(op: () => Promise<T>): Promise<T> => {
    try {
      return (await breaker.fire(op)) as T;
    } catch (err) {
      // EOPENBREAKER also comes while half-open (only the one trial call passes), when `opened` is false;
      // ETIMEDOUT is opossum's own timeout.
      const code = (err as { code?: string }).code;
      if (breaker.opened || code === 'EOPENBREAKER' || code === 'ETIMEDOUT' || isDatabaseUnavailable(err)) {
        throw new ApiError(
          'service_unavailable',
          'database unavailable, retry later',
          undefined,
          options.retryAfterS,
        );
      }
      throw err;
    }
  };
  return { call, breaker };
}
