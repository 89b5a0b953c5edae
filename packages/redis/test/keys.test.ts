import { describe, expect, it } from 'vitest';
import { RedisKeys } from '../src/keys.js';

describe('RedisKeys', () => {
  const keys = new RedisKeys('ac');

  it('builds every key under the prefix', () => {
    expect(keys.pubsubChannel('private-user.5')).toBe('ac:ch:private-user.5');
    expect(keys.pusherChannelOf('ac:ch:private-user.5')).toBe('private-user.5');
    expect(keys.pusherChannelOf('other:ch:private-user.5')).toBeNull();
    expect(keys.userLog(5)).toBe('ac:log:user:5');
    expect(keys.userLogPrefix + '5').toBe(keys.userLog(5));
    expect(keys.deliveredTo('77')).toBe('ac:delivered:77');
    expect(keys.bullPrefix).toBe('ac:bull');
  });

  it('refuses parts that could alias another key', () => {
    expect(() => new RedisKeys('a:b')).toThrow();
    expect(() => keys.userLog('5:x')).toThrow();
    expect(() => keys.deliveredTo('1 2')).toThrow();
    expect(() => keys.pubsubChannel('private-user.5 *')).toThrow();
    expect(() => keys.pubsubChannel('')).toThrow();
  });
});
