import { SignJWT, jwtVerify, errors } from 'jose';

/** A user's identity as carried by the bearer JWT that browsers send to /broadcasting/auth and the API. */
export interface UserClaims {
  userId: number;
  /** the token's `exp`, in seconds since the epoch; every accepted token has one */
  exp: number;
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
 * (`alg: none` included), expired, no `exp` at all, or a `sub` that is not a user id. A token without `exp`
 * would be valid forever: nothing could end a leaked one short of rotating JWT_SECRET for everybody, and the
 * edge closes a connection when its token expires, which needs an expiry to aim at.
 */
export async function verifyUserJwt(secret: string, token: string): Promise<UserClaims | null> {
  try {
    const { payload } = await jwtVerify(token, new TextEncoder().encode(secret), {
      algorithms: [ALG],
      requiredClaims: ['exp'],
    });
    if (typeof payload.sub !== 'string' || !/^[1-9]\d{0,9}$/.test(payload.sub)) return null;
    const userId = Number(payload.sub);
    // jose has checked that exp is a number in the future.
    return userId <= 2_147_483_647 && typeof payload.exp === 'number' ? { userId, exp: payload.exp } : null;
  } catch (err) {
    if (err instanceof errors.JOSEError) return null;
    throw err;
  }
}
