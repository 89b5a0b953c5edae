import { describe, expect, it } from 'vitest';
import { ConfigError, DEV_DEFAULTS, parseEdgeConfig } from '../src/config.js';

const productionSecrets = {
  PUSHER_APP_ID: 'alarmcast-prod',
  PUSHER_APP_KEY: 'k3y-prod',
  PUSHER_APP_SECRET: 'a'.repeat(64),
  JWT_SECRET: 'b'.repeat(64),
};

describe('parseEdgeConfig', () => {
  it('gives every variable its documented default and says which credentials are the development ones', () => {
    const config = parseEdgeConfig({});
    expect(config).toMatchObject({
      nodeEnv: 'development',
      host: '127.0.0.1',
      port: 6001,
      app: { id: 'alarmcast', key: 'alarmcast-key', secret: 'alarmcast-secret' },
      jwtSecret: 'alarmcast-dev-jwt-secret',
      databaseUrl: 'postgresql://postgres@127.0.0.1:5432/alarmcast',
      redisUrl: 'redis://127.0.0.1:6379',
      redisPrefix: 'ac',
      activityTimeoutS: 30,
      maxMessageBytes: 10_000,
      logLevel: 'info',
      corsOrigins: '*',
    });
    expect(config.defaultsUsed).toEqual(Object.keys(DEV_DEFAULTS));
  });

  it('reads and coerces what is set; empty values count as unset', () => {
    const config = parseEdgeConfig({
      EDGE_PORT: '7001',
      ACTIVITY_TIMEOUT_S: '120',
      MAX_MESSAGE_BYTES: '20000',
      CORS_ORIGINS: 'https://console.example, https://ops.example',
      PUSHER_APP_KEY: 'mykey',
      PUSHER_APP_SECRET: '',
    });
    expect(config.port).toBe(7001);
    expect(config.activityTimeoutS).toBe(120);
    expect(config.maxMessageBytes).toBe(20_000);
    expect(config.corsOrigins).toEqual(['https://console.example', 'https://ops.example']);
    expect(config.app.key).toBe('mykey');
    expect(config.app.secret).toBe(DEV_DEFAULTS.PUSHER_APP_SECRET);
    expect(config.defaultsUsed).toEqual(['PUSHER_APP_ID', 'PUSHER_APP_SECRET', 'JWT_SECRET']);
  });

  it('has the documented abuse-limit defaults, and reads TRUST_PROXY as documented', () => {
    const config = parseEdgeConfig({});
    expect(config.internalPort).toBe(9101);
    expect(config.trustProxy).toBe(false);
    expect(config.rateLimits).toEqual({
      windowS: 1,
      channelAuthPerUser: 20,
      channelAuthPerIp: 200,
      authFailuresPerIp: 100,
    });
    expect(config.connectionCaps).toEqual({ perIp: 500, perUser: 32 });
    expect(config.subscribeTimeoutS).toBe(30);
    expect(config.httpTimeouts).toEqual({ headersTimeoutMs: 10_000, requestTimeoutMs: 30_000 });
    expect(parseEdgeConfig({ TRUST_PROXY: '2' }).trustProxy).toBe(2);
    expect(parseEdgeConfig({ TRUST_PROXY: 'loopback, 10.0.0.0/8' }).trustProxy).toEqual([
      'loopback',
      '10.0.0.0/8',
    ]);
    expect(() => parseEdgeConfig({ TRUST_PROXY: 'true' })).toThrow(/TRUST_PROXY/);
    expect(() => parseEdgeConfig({ TRUST_PROXY: 'not-an-ip' })).toThrow(/TRUST_PROXY/);
    expect(() => parseEdgeConfig({ EDGE_MAX_CONNECTIONS_PER_IP: '-1' })).toThrow(
      /EDGE_MAX_CONNECTIONS_PER_IP/,
    );
  });

  it('names each invalid variable', () => {
    const run = () =>
      parseEdgeConfig({
        EDGE_PORT: 'http',
        REDIS_URL: 'mysql://x',
        PUSHER_APP_KEY: 'a:b',
        REDIS_PREFIX: 'a:b',
      });
    expect(run).toThrow(ConfigError);
    expect(run).toThrow(/EDGE_PORT/);
    expect(run).toThrow(/REDIS_URL/);
    expect(run).toThrow(/PUSHER_APP_KEY/);
    expect(run).toThrow(/REDIS_PREFIX/);
  });

  it('refuses to start in production without credentials, naming every missing one', () => {
    const run = () => parseEdgeConfig({ NODE_ENV: 'production' });
    expect(run).toThrow(ConfigError);
    expect(run).toThrow(/refusing to start in production/);
    for (const name of Object.keys(DEV_DEFAULTS)) {
      expect(run).toThrow(new RegExp(`${name}: is required when NODE_ENV=production`));
    }
  });

  it('refuses the development credentials and short HMAC keys in production', () => {
    expect(() =>
      parseEdgeConfig({ ...productionSecrets, NODE_ENV: 'production', JWT_SECRET: DEV_DEFAULTS.JWT_SECRET }),
    ).toThrow(/JWT_SECRET: is the public development default/);
    expect(() =>
      parseEdgeConfig({ ...productionSecrets, NODE_ENV: 'production', PUSHER_APP_SECRET: 'short' }),
    ).toThrow(/PUSHER_APP_SECRET: must be at least 32 characters/);
  });

  it('starts in production with real credentials and uses no default', () => {
    const config = parseEdgeConfig({ ...productionSecrets, NODE_ENV: 'production' });
    expect(config.app).toEqual({
      id: 'alarmcast-prod',
      key: 'k3y-prod',
      secret: productionSecrets.PUSHER_APP_SECRET,
    });
    expect(config.jwtSecret).toBe(productionSecrets.JWT_SECRET);
    expect(config.defaultsUsed).toEqual([]);
  });
});
