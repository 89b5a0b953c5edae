import { SignJWT, jwtVerify, errors } from 'jose';

/** A user's identity as carried by the bearer JWT that browsers send to /broadcasting/auth and the API. */
export interface UserClaims {
  userId: number;
}

const ALG = 'HS256';

export async function signUserJwt(secret: string, userId: number, ttlSeconds = 12 * 3600): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: ALG, typ: 'JWT' })
    .setSubject(String(userId))
    .setIssuedAt()
    .setExpirationTime(`${ttlSeconds}s`)
    .sign(new TextEncoder().encode(secret));
}

/**
 * Verifies an HS256 JWT and returns its user, or null for anything invalid: bad signature, other algorithm
 * (`alg: none` included), expired, or a `sub` that is not a user id.
 */
export async function verifyUserJwt(secret: string, token: string): Promise<UserClaims | null> {
  try {
    const { payload } = await jwtVerify(token, new TextEncoder().encode(secret), { algorithms: [ALG] });
    if (typeof payload.sub !== 'string' || !/^[1-9]\d{0,9}$/.test(payload.sub)) return null;
    const userId = Number(payload.sub);
    return userId <= 2_147_483_647 ? { userId } : null;
  } catch (err) {
    if (err instanceof errors.JOSEError) return null;
    throw err;
  }
}
