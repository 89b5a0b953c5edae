import type { PgPool } from '../src/index.js';

/**
 * `pool` as the code under test sees it, with every `query` call counted (and, while `fail()` says so,
 * refused): the real pool underneath, so the statements really run.
 */
export function countingPool(
  pool: PgPool,
  fail: () => boolean = () => false,
): { pool: PgPool; queries: () => number } {
  let queries = 0;
  const wrapped = new Proxy(pool, {
    get: (target, prop, receiver) =>
      prop === 'query'
        ? (...args: Parameters<PgPool['query']>) => {
            queries++;
            return fail()
              ? Promise.reject(new Error('connection lost'))
              : (target.query as (...a: unknown[]) => unknown).apply(target, args);
          }
        : Reflect.get(target, prop, receiver),
  });
  return { pool: wrapped, queries: () => queries };
}
