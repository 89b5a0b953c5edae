/**
 * The HS256 key of user JWTs that edge, ingest and the CLI use when none is configured. It is printed in this
 * repository, so production refuses it.
 */
export const DEV_JWT_SECRET = 'alarmcast-dev-jwt-secret';

/**
 * Why a secret may not be used in production, or null: unset, equal to its public development default, or
 * (for an HMAC key) too short to resist guessing. One rule for every service that takes secrets.
 */
export function productionSecretProblem(
  value: string | undefined,
  devDefault: string,
  isHmacKey: boolean,
): string | null {
  if (value === undefined) return 'is required when NODE_ENV=production';
  if (value === devDefault) return 'is the public development default; set a real value';
  if (isHmacKey && value.length < 32) {
    return 'must be at least 32 characters in production (an HMAC key: `openssl rand -hex 32`)';
  }
  return null;
}
