import { createHash, randomBytes } from 'node:crypto';

/** Visible prefix, so a leaked token is recognisable by secret scanners and in logs. */
const PREFIX = 'act_';

/** A new collector token: 32 random bytes. Only its hash is stored; the token is shown once. */
export function generateCollectorToken(): string {
  return PREFIX + randomBytes(32).toString('base64url');
}

/**
 * SHA-256 is the right hash here (not a password KDF): the token has 256 bits of entropy, so there is
 * nothing to brute-force, and the lookup must be a cheap indexed equality on every POST.
 */
export function hashCollectorToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}
