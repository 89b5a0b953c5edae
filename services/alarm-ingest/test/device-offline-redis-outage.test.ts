import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { generateCollectorToken, hashCollectorToken } from '@alarmcast/auth';
import type { ProvisionResult } from '@alarmcast/contracts';
import { createPrismaClient, provisionGraph, type PrismaClient } from '@alarmcast/db';
import { RedisKeys, createRedis, readStateSnapshot } from '@alarmcast/redis';
import {
  createTestDatabase,
  startPrivateRedis,
  testEnv,
  uniqueRedisPrefix,
  type PrivateRedis,
} from '@alarmcast/testing';
import { parseIngestConfig } from '../src/config.js';
import { startIngest, type IngestServer } from '../src/server.js';

/**
 * A device taken offline while the ingest's Redis is down: Postgres has it offline at once, and its
 * channel must say so once Redis is back (the write is retried). No later write would heal it: an offline
 * device sends no inform. Redis here is a private redis-server, killed and restarted empty.
 */
describe('a device that goes offline while Redis is down', () => {
  const prefix = uniqueRedisPrefix();
  const keys = new RedisKeys(prefix);
  let prisma: PrismaClient;
  let world: ProvisionResult;
  let ingest: IngestServer;
  let redisSrv: PrivateRedis;
  let drop: () => Promise<void>;

  beforeAll(async () => {
    const db = await createTestDatabase(testEnv().postgresAdminUrl, testEnv().postgresTemplate);
    drop = db.drop;
    prisma = createPrismaClient(db.url);
    world = await provisionGraph(
      prisma,
      {
        tenants: [
          {
            ref: 't',
            name: 'Tenant',
            slug: 'tenant',
            devices: [{ ref: 'd', oui: '00D09E', productClass: 'HG8245', serialNumber: 'S1' }],
            collectorTokens: [{ ref: 'c', name: 'collector', scopes: ['informs' as const] }],
          },
        ],
      },
      { hashToken: hashCollectorToken, newToken: generateCollectorToken },
    );
    redisSrv = await startPrivateRedis();
    ingest = await startIngest(
      parseIngestConfig({
        INGEST_PORT: '0',
        INGEST_INTERNAL_PORT: '0',
        DATABASE_URL: db.url,
        REDIS_URL: redisSrv.url,
        REDIS_PREFIX: prefix,
        LOG_LEVEL: 'silent',
        DEVICE_OFFLINE_INTERVALS: '1',
        DEVICE_OFFLINE_GRACE_S: '0',
        PRESENCE_SWEEP_INTERVAL_MS: '200',
        DEVICE_STATUS_MIN_INTERVAL_MS: '100',
        DEVICE_OFFLINE_ALARM: 'false',
      }),
    );
  });
  afterAll(async () => {
    await ingest?.close();
    await redisSrv?.stop();
    await prisma?.$disconnect();
    await drop?.();
  });

  it('is shown offline on its channel once Redis is back', async () => {
    const deviceId = world.devices.d!.id;
    const channel = `private-device.${deviceId}`;
    const res = await fetch(`${ingest.url}/v1/devices/informs`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${world.collectorTokens.c!.token}`,
      },
      body: JSON.stringify({
        informs: [
          {
            deviceId,
            informedAt: new Date().toISOString(),
            eventCodes: ['1 BOOT'],
            periodicInformInterval: 2,
          },
        ],
      }),
    });
    expect(res.status).toBe(200);
    const redis = createRedis(redisSrv.url, { name: 'test' });
    redis.on('error', () => undefined);
    const online = async (): Promise<boolean | undefined> => {
      const snap = await readStateSnapshot(redis, keys, channel);
      return snap ? (JSON.parse(snap.data) as { device: { online: boolean } }).device.online : undefined;
    };
    await vi.waitFor(async () => expect(await online()).toBe(true));

    await redisSrv.kill();
    // Its deadline (2 s after the inform) passes with Redis down: Postgres takes it offline.
    await vi.waitFor(
      async () => {
        const row = await prisma.deviceStatus.findUnique({ where: { deviceId } });
        expect(row?.online).toBe(false);
      },
      { timeout: 10_000, interval: 100 },
    );
    await redisSrv.restart();
    await vi.waitFor(async () => expect(await online()).toBe(false), { timeout: 10_000, interval: 100 });
    redis.disconnect();
  });
});
