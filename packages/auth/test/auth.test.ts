import { describe, expect, it } from 'vitest';
import { createHmac } from 'node:crypto';
import {
  DEV_JWT_SECRET,
  productionSecretProblem,
  generateCollectorToken,
  hashCollectorToken,
  signChannelAuth,
  signUserJwt,
  verifyChannelAuth,
  verifyUserJwt,
} from '../src/index.js';

const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');

describe('user JWTs', () => {
  it('round-trips the user id', async () => {
    expect(await verifyUserJwt('s3cret', await signUserJwt('s3cret', 42))).toEqual({ userId: 42 });
  });

  it('refuses another key, alg none, an expired token, a non-numeric sub and garbage', async () => {
    expect(await verifyUserJwt('other', await signUserJwt('s3cret', 42))).toBeNull();
    const none = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: '42', exp: 9_999_999_999 })}.`;
    expect(await verifyUserJwt('s3cret', none)).toBeNull();
    expect(await verifyUserJwt('s3cret', await signUserJwt('s3cret', 42, -10))).toBeNull();
    const head = b64({ alg: 'HS256', typ: 'JWT' });
    const body = b64({ sub: 'admin', exp: 9_999_999_999 });
    const sig = createHmac('sha256', 's3cret').update(`${head}.${body}`).digest('base64url');
    expect(await verifyUserJwt('s3cret', `${head}.${body}.${sig}`)).toBeNull();
    expect(await verifyUserJwt('s3cret', 'not.a.jwt')).toBeNull();
  });
});

describe('Pusher channel signatures', () => {
  it('matches the documented HMAC-SHA256 over "socket_id:channel"', () => {
    // Worked example from the Pusher channel authorization docs.
    expect(
      signChannelAuth('278d425bdf160c739803', '7ad3773142a6692b25b8', '1234.1234', 'private-foobar'),
    ).toBe('278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4');
  });

  it('verifies only the exact socket and channel', () => {
    const auth = signChannelAuth('key', 'secret', '1.2', 'private-user.5');
    expect(verifyChannelAuth('key', 'secret', '1.2', 'private-user.5', auth)).toBe(true);
    expect(verifyChannelAuth('key', 'secret', '1.3', 'private-user.5', auth)).toBe(false);
    expect(verifyChannelAuth('key', 'secret', '1.2', 'private-user.6', auth)).toBe(false);
    expect(verifyChannelAuth('key', 'other', '1.2', 'private-user.5', auth)).toBe(false);
    expect(verifyChannelAuth('key', 'secret', '1.2', 'private-user.5', undefined)).toBe(false);
    expect(verifyChannelAuth('key', 'secret', '1.2', 'private-user.5', auth.slice(0, -1))).toBe(false);
  });
});

describe('collector tokens', () => {
  it('are prefixed, random, and hashed deterministically to SHA-256 hex', () => {
    const a = generateCollectorToken();
    const b = generateCollectorToken();
    expect(a).toMatch(/^act_[A-Za-z0-9_-]{43}$/);
    expect(a).not.toBe(b);
    expect(hashCollectorToken(a)).toMatch(/^[0-9a-f]{64}$/);
    expect(hashCollectorToken(a)).toBe(hashCollectorToken(a));
    expect(hashCollectorToken(a)).not.toBe(hashCollectorToken(b));
  });
});

describe('productionSecretProblem', () => {
  it('refuses unset, development-default and (for HMAC keys) short secrets', () => {
    expect(productionSecretProblem(undefined, 'dev', true)).toMatch(/required/);
    expect(productionSecretProblem(DEV_JWT_SECRET, DEV_JWT_SECRET, true)).toMatch(/development default/);
    expect(productionSecretProblem('short', DEV_JWT_SECRET, true)).toMatch(/32 characters/);
    expect(productionSecretProblem('short-but-not-a-key', 'dev', false)).toBeNull();
    expect(productionSecretProblem('x'.repeat(32), DEV_JWT_SECRET, true)).toBeNull();
  });
});
