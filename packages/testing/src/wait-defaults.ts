import { vi } from 'vitest';

/**
 * `vi.waitFor` with a 10 s default timeout instead of vitest's 1 s (vitest has no setting for it). The
 * tests wait for real services (Redis, Postgres, BullMQ, spawned processes) on a 2-core CI machine that
 * runs several suites at once; 1 s there is a coin toss, not a limit anyone chose. A wait that passes
 * costs no more; a real failure still fails, 10 s later. Calls that name their own timeout keep it.
 */
const waitFor = vi.waitFor.bind(vi);
const DEFAULT_TIMEOUT_MS = 10_000;

vi.waitFor = ((callback, options) =>
  waitFor(
    callback,
    typeof options === 'number' ? options : { ...options, timeout: options?.timeout ?? DEFAULT_TIMEOUT_MS },
  )) as typeof vi.waitFor;
