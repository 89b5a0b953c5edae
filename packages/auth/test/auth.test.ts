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
    const before = Math.floor(Date.now() / 1000);
    const claims = await verifyUserJwt('s3cret', await signUserJwt('s3cret', 42, 600));
    expect(claims?.userId).toBe(42);
    expect(claims?.exp).toBeGreaterThanOrEqual(before + 600);
    expect(claims?.exp).toBeLessThanOrEqual(before + 601);
  });

  it('refuses a correctly signed token without exp, which would be valid forever', async () => {
    const head = b64({ alg: 'HS256', typ: 'JWT' });
    const sign = (body: string) =>
      createHmac('sha256', 's3cret').update(`${head}.${body}`).digest('base64url');
    const noExp = b64({ sub: '42', iat: Math.floor(Date.now() / 1000) });
    expect(await verifyUserJwt('s3cret', `${head}.${noExp}.${sign(noExp)}`)).toBeNull();
    const withExp = b64({ sub: '42', exp: 9_999_999_999 });
    expect(await verifyUserJwt('s3cret', `${head}.${withExp}.${sign(withExp)}`)).toEqual({
      userId: 42,
      exp: 9_999_999_999,
    });
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

  it('with channel_data, signs "socket_id:channel:channel_data" as Pusher does for presence', () => {
    // Worked example from the Pusher presence channel authorization docs.
    const data = '{"user_id":10,"user_info":{"name":"Mr. Channels"}}';
    expect(
      signChannelAuth('278d425bdf160c739803', '7ad3773142a6692b25b8', '1234.1234', 'presence-foobar', data),
    ).toBe('278d425bdf160c739803:31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80');
    const auth = signChannelAuth('key', 'secret', '1.2', 'private-tenant.1', '{"user_id":5}');
    expect(verifyChannelAuth('key', 'secret', '1.2', 'private-tenant.1', auth, '{"user_id":5}')).toBe(true);
    expect(verifyChannelAuth('key', 'secret', '1.2', 'private-tenant.1', auth, '{"user_id":6}')).toBe(false);
    expect(verifyChannelAuth('key', 'secret', '1.2', 'private-tenant.1', auth)).toBe(false);
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
