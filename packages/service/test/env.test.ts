import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ConfigError, commonEnv, parseEnv, portVar } from '../src/index.js';

const Schema = z.object({ ...commonEnv, PORT: portVar(1234) });

describe('service environment', () => {
  it('gives every common variable its documented default, and treats an empty value as unset', () => {
    const defaults = {
      NODE_ENV: 'development',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      DATABASE_URL: 'postgresql://postgres@127.0.0.1:5432/alarmcast',
      REDIS_URL: 'redis://127.0.0.1:6379',
      REDIS_CLUSTER_NODES: [],
      REDIS_PREFIX: 'ac',
      PORT: 1234,
    };
    expect(parseEnv('svc', Schema, {})).toEqual(defaults);
    expect(parseEnv('svc', Schema, { REDIS_PREFIX: '', PORT: ' ', LOG_LEVEL: '' })).toEqual(defaults);
    expect(parseEnv('svc', Schema, { REDIS_PREFIX: 't-1', PORT: '0' })).toMatchObject({
      REDIS_PREFIX: 't-1',
      PORT: 0,
    });
  });

  it('reads REDIS_CLUSTER_NODES as a list of seed nodes, and refuses a malformed one', () => {
    expect(
      parseEnv('svc', Schema, { REDIS_CLUSTER_NODES: '127.0.0.1:7000, redis-b:7001,' }).REDIS_CLUSTER_NODES,
    ).toEqual([
      { host: '127.0.0.1', port: 7000 },
      { host: 'redis-b', port: 7001 },
    ]);
    expect(parseEnv('svc', Schema, { REDIS_CLUSTER_NODES: ' ' }).REDIS_CLUSTER_NODES).toEqual([]);
    for (const bad of ['127.0.0.1', 'a:0', 'a:70000', 'redis://a:1', 'a:1;b:2'])
      expect(() => parseEnv('svc', Schema, { REDIS_CLUSTER_NODES: bad })).toThrow(
        /REDIS_CLUSTER_NODES: invalid cluster node/,
      );
  });

  it('lists every bad variable in one ConfigError naming the service', () => {
    const bad = {
      REDIS_PREFIX: 'a:b',
      REDIS_URL: 'http://x',
      DATABASE_URL: 'redis://x',
      PORT: '70000',
      NODE_ENV: 'production',
    };
    const run = () => parseEnv('svc', Schema, bad);
    expect(run).toThrow(ConfigError);
    expect(run).toThrow(/^svc: invalid environment \(refusing to start in production\): /);
    for (const name of ['REDIS_PREFIX', 'REDIS_URL', 'DATABASE_URL', 'PORT'])
      expect(run).toThrow(new RegExp(name));
  });
});
