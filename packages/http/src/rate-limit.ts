import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { Counter, type Registry } from '@alarmcast/observability';
import { ApiError } from './errors.js';

export interface RateLimitOptions {
  /** names the limit in metrics and in the Redis key prefix */
  name: string;
  /** an ioredis client that can run commands (not a subscriber); the limit's counters live there */
  redis: unknown;
  /** prefix of the limit's keys (packages/redis `RedisKeys.rateLimit(name)`) */
  keyPrefix: string;
  /** requests (or failures) allowed per window and key; 0 turns the limit off */
  points: number;
  /** window length in seconds: fixed windows, so up to twice `points` can pass around a window's edge */
  durationS: number;
  /** what is counted, for the 429 message, e.g. "requests per collector token" */
  what: string;
  /**
   * A Redis call slower than this, or failing, lets the request through (fail open).
   * @defaultValue 250 ms
   */
  timeoutMs?: number;
  /** a request was refused */
  onLimited?: (name: string) => void;
  /** Redis was unreachable or slow, and a request was let through unchecked */
  onFailOpen?: (name: string, err: unknown) => void;
}

/** Seconds to put in Retry-After: whole seconds, at least 1. */
const retryAfterS = (ms: number): number => Math.max(1, Math.ceil(ms / 1000));

/**
 * One rate limit shared by every process through Redis (rate-limiter-flexible's Redis store: an atomic
 * INCR with expiry per key and window). A key over its limit is also remembered in this process until its
 * window ends, so an abusive client costs no Redis call for the rest of it.
 *
 * When Redis is unreachable or slower than `timeoutMs`, requests pass (fail open) and `onFailOpen` counts
 * them: a rate limit exists to keep abuse from hurting everyone else, and Redis being away must never stop
 * ingest accepting alarms (the outbox keeps them without Redis).
 */
export class RateLimit {
  private readonly limiter: RateLimiterRedis | null;
  private readonly timeoutMs: number;
  /** keys over their limit, and until when (ms since epoch), as this process learnt it */
  private readonly blocked = new Map<string, number>();

  constructor(private readonly options: RateLimitOptions) {
    this.timeoutMs = options.timeoutMs ?? 250;
    this.limiter =
      options.points > 0
        ? new RateLimiterRedis({
            storeClient: options.redis,
            keyPrefix: options.keyPrefix,
            points: options.points,
            duration: options.durationS,
            // Not rejectIfRedisNotReady: a client still connecting at boot would skip every limit. A client
            // without an offline queue fails at once while Redis is away; one with a queue, after timeoutMs.
          })
        : null;
  }

  /**
   * Counts one request for `key`; throws 429 `rate_limited` (with `Retry-After`) once the key is over its
   * limit for this window.
   */
  async consume(key: string): Promise<void> {
    const error = await this.count(key);
    if (error) throw error;
  }

  /**
   * Throws 429 if this process knows `key` is over its limit, without asking Redis: the check before an
   * authentication, whose failures are what `penalize` counts.
   */
  check(key: string): void {
    const until = this.blocked.get(key);
    if (until === undefined) return;
    const left = until - Date.now();
    if (left > 0) throw this.limited(left);
    this.blocked.delete(key);
  }

  /** Counts one failure for `key`; returns the 429 to answer instead if that put it over its limit. */
  penalize(key: string): Promise<ApiError | null> {
    return this.count(key);
  }

  private async count(key: string): Promise<ApiError | null> {
    if (!this.limiter) return null;
    try {
      this.check(key);
    } catch (err) {
      this.options.onLimited?.(this.options.name);
      return err as ApiError;
    }
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.limiter.consume(key),
        new Promise((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`rate limit store slower than ${this.timeoutMs} ms`)),
            this.timeoutMs,
          );
        }),
      ]);
      return null;
    } catch (err) {
      if (err instanceof RateLimiterRes) {
        if (this.blocked.size >= 100_000) this.blocked.clear();
        this.blocked.set(key, Date.now() + err.msBeforeNext);
        this.options.onLimited?.(this.options.name);
        return this.limited(err.msBeforeNext);
      }
      this.options.onFailOpen?.(this.options.name, err);
      return null;
    } finally {
      clearTimeout(timer);
    }
  }

  private limited(msBeforeNext: number): ApiError {
    const wait = retryAfterS(msBeforeNext);
    return new ApiError(
      'rate_limited',
      `too many ${this.options.what} (${this.options.points} per ${this.options.durationS} s); retry in ${wait} s`,
      undefined,
      wait,
    );
  }
}

export interface RateLimitsOptions {
  /** where every limit's counters live (see RateLimitOptions.redis) */
  redis: unknown;
  /** a limit's key prefix from its name (packages/redis `RedisKeys.rateLimit`) */
  keyPrefix: (name: string) => string;
  /** registers `rate_limited_total{limit}` and `rate_limit_fail_open_total{limit}` */
  metrics: Registry;
  log: { debug: (obj: object, msg: string) => void };
}

/**
 * A service's rate limits: one factory per process, so every limit of it shares the two metrics (refusals
 * and requests let through while Redis is unreachable) and one Redis connection.
 */
export function rateLimits(
  options: RateLimitsOptions,
): (name: string, points: number, durationS: number, what: string) => RateLimit {
  const limited = new Counter({
    name: 'rate_limited_total',
    help: 'Requests answered 429 by rate limit',
    labelNames: ['limit'] as const,
    registers: [options.metrics],
  });
  const failOpen = new Counter({
    name: 'rate_limit_fail_open_total',
    help: 'Requests let through unchecked because the rate limit store (Redis) was unreachable or slow',
    labelNames: ['limit'] as const,
    registers: [options.metrics],
  });
  return (name, points, durationS, what) => {
    // Every limit's series exist from the start (at 0), so a rate() or an alert on them works before the
    // first refusal.
    limited.inc({ limit: name }, 0);
    failOpen.inc({ limit: name }, 0);
    return new RateLimit({
      name,
      redis: options.redis,
      keyPrefix: options.keyPrefix(name),
      points,
      durationS,
      what,
      onLimited: (limit) => limited.inc({ limit }),
      onFailOpen: (limit, err) => {
        failOpen.inc({ limit });
        options.log.debug({ err, limit }, 'rate limit store unavailable: request let through');
      },
    });
  };
}
