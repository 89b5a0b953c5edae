import { createHash } from 'node:crypto';
import type { Request } from 'express';
import { IDEMPOTENCY_WINDOW_S, IdempotencyKey } from '@alarmcast/contracts';
import { ApiError } from '@alarmcast/http';
import { pruneIdempotencyKeys, type PgPool } from '@alarmcast/db';
import type { Logger } from '@alarmcast/observability';

/** The request's `Idempotency-Key`, or null without one; 400 invalid_idempotency_key when malformed. */
export function idempotencyKeyOf(req: Request): string | null {
  const header = req.get('idempotency-key');
  if (header === undefined) return null;
  const parsed = IdempotencyKey.safeParse(header);
  if (!parsed.success) {
    throw new ApiError('invalid_idempotency_key', 'Idempotency-Key must be 1-255 printable ASCII characters');
  }
  return parsed.data;
}

/** JSON with object keys sorted at every level, so that equal bodies hash equally whatever their key order. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * SHA-256 (hex) of a request body as validated (ids normalized to numbers), in canonical form: a retry that
 * sends `"deviceId":"3"` instead of `3`, or its keys in another order, is the same request.
 */
export function requestHash(body: unknown): string {
  return createHash('sha256').update(canonicalJson(body)).digest('hex');
}

/** How often expired Idempotency-Key answers are deleted, and how many per statement. */
const PRUNE_INTERVAL_MS = 60_000;
const PRUNE_BATCH = 5000;
/** Bounds one round's work; a backlog larger than this is worked off over the next rounds. */
const PRUNE_MAX_BATCHES = 20;

/**
 * Deletes stored answers older than the replay window, once a minute in every ingest process. Expired rows
 * are already ignored by the write statement, so pruning only bounds the table's size: it can lag or fail
 * (logged) without changing any answer. Several processes pruning at once merely delete disjoint or empty
 * batches.
 */
export function startIdempotencyPruner(pool: PgPool, log: Logger): { stop: () => Promise<void> } {
  let running: Promise<void> | undefined;
  const round = async (): Promise<void> => {
    let total = 0;
    for (let i = 0; i < PRUNE_MAX_BATCHES; i++) {
      const deleted = await pruneIdempotencyKeys(pool, IDEMPOTENCY_WINDOW_S, PRUNE_BATCH);
      total += deleted;
      if (deleted < PRUNE_BATCH) break;
    }
    if (total > 0) log.debug({ deleted: total }, 'pruned expired idempotency keys');
  };
  const timer = setInterval(() => {
    running ??= round()
      .catch((err: unknown) => log.warn({ err }, 'idempotency key pruning failed; retrying next round'))
      .finally(() => (running = undefined));
  }, PRUNE_INTERVAL_MS);
  timer.unref();
  return {
    stop: async () => {
      clearInterval(timer);
      await running;
    },
  };
}
