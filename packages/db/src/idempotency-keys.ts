import type { PgPool } from './pool.js';

/**
 * Stored answers to requests with an Idempotency-Key (table idempotency_keys): written by the alarm
 * statements themselves (alarm-writes.ts), replayed within their window, then pruned.
 */

/** Drops the answer of (token, key) if it is past its window, so that the key can be used again. */
export async function dropExpiredIdempotencyKey(
  pool: PgPool,
  tokenId: number,
  claim: { key: string; windowS: number },
): Promise<void> {
  await pool.query({
    name: 'drop_expired_idempotency_key',
    text: `DELETE FROM idempotency_keys
            WHERE token_id = $1 AND key = $2 AND created_at <= now() - make_interval(secs => $3::float8)`,
    values: [tokenId, claim.key, claim.windowS],
  });
}

/**
 * Deletes answers older than the replay window, at most `batch` per call (bounded work per call; callers
 * run it periodically). Returns how many were deleted.
 */
export async function pruneIdempotencyKeys(pool: PgPool, windowS: number, batch = 1000): Promise<number> {
  const { rowCount } = await pool.query({
    name: 'prune_idempotency_keys',
    text: `DELETE FROM idempotency_keys WHERE (token_id, key) IN (
             SELECT token_id, key FROM idempotency_keys
              WHERE created_at <= now() - make_interval(secs => $1::float8)
              LIMIT $2)`,
    values: [windowS, batch],
  });
  return rowCount ?? 0;
}
