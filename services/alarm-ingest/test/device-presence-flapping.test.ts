import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateCollectorToken, hashCollectorToken } from '@alarmcast/auth';
import type { ProvisionResult } from '@alarmcast/contracts';
import { createPrismaClient, provisionGraph, type PrismaClient } from '@alarmcast/db';
import { RedisKeys, createRedis, decodeEnvelope, type Redis } from '@alarmcast/redis';
import { createTestDatabase, testEnv, uniqueRedisPrefix } from '@alarmcast/testing';
import { parseIngestConfig } from '../src/config.js';
import { startIngest, type IngestServer } from '../src/server.js';

/**
 * The `informs` benchmark's conditions at a small scale (issue 12: most offline transitions never reached a
 * watcher): many devices put in a steady state by SQL (Redis holds nothing for them), flappers that boot,
 * fall silent past their deadline and boot again, while periodic informs of the other devices share their
 * batches; every offline and every back-online transition must be published on `private-device.{id}`.
 */
const DEVICES = 2000;
const FLAPPERS = 300;
const graph = {
  tenants: [
    {
      ref: 't',
      name: 'Tenant',
      slug: 'tenant',
      devices: Array.from({ length: DEVICES }, (_, i) => ({
        ref: `d${i}`,
        oui: '00D09E',
        productClass: 'HG8245',
        serialNumber: `S${i}`,
      })),
      collectorTokens: [{ ref: 'c', name: 'collector', scopes: ['informs' as const] }],
    },
  ],
};

describe('presence under flapping devices (bench conditions)', () => {
  const prefix = uniqueRedisPrefix();
  const keys = new RedisKeys(prefix);
  let prisma: PrismaClient;
  let world: ProvisionResult;
  let ingests: IngestServer[] = [];
  let drop: () => Promise<void>;
  let sub: Redis;
  let redis: Redis;
  let dbUrl: string;

  beforeAll(async () => {
    const db = await createTestDatabase(testEnv().postgresAdminUrl, testEnv().postgresTemplate);
    dbUrl = db.url;
    drop = db.drop;
    prisma = createPrismaClient(db.url);
    world = await provisionGraph(prisma, graph, {
      hashToken: hashCollectorToken,
      newToken: generateCollectorToken,
    });
    redis = createRedis(testEnv().redisUrl, { name: 'test' });
  });
  afterAll(async () => {
    await Promise.all(ingests.map((i) => i.close()));
    await prisma?.$disconnect();
    await drop?.();
    sub?.disconnect();
    redis?.disconnect();
  });

  it('publishes every offline and back-online transition of flapping devices', async () => {
    const ids = Array.from({ length: DEVICES }, (_, i) => world.devices[`d${i}`]!.id);
    const flappers = ids.slice(0, FLAPPERS);
    const periodic = ids.slice(FLAPPERS);
    // Steady state by SQL, as the bench does: online, deadlines ahead, flappers at a 1 s interval.
    await prisma.$executeRawUnsafe(
      `UPDATE device_status SET online = true, periodic_inform_interval_s = 300, software_version = '1.0.0',
              hardware_version = 'HW1', uptime_s = 259200, last_event_codes = ARRAY['2 PERIODIC'],
              parameters = '{}', last_boot_at = now() - interval '3 days', offline_alarm_id = NULL,
              last_inform_at = now() - interval '10 s', offline_at = now() + interval '300 s',
              status_changed_at = now() - interval '3 days'`,
    );
    await prisma.$executeRawUnsafe(
      `UPDATE device_status SET periodic_inform_interval_s = 1, last_inform_at = now(),
              offline_at = now() + interval '1 s' WHERE device_id = ANY($1::int[])`,
      flappers,
    );
    const start = () =>
      startIngest(
        parseIngestConfig({
          INGEST_PORT: '0',
          INGEST_INTERNAL_PORT: '0',
          DATABASE_URL: dbUrl,
          REDIS_URL: testEnv().redisUrl,
          REDIS_PREFIX: prefix,
          LOG_LEVEL: 'silent',
          DEVICE_OFFLINE_INTERVALS: '1',
          DEVICE_OFFLINE_GRACE_S: '0',
          PRESENCE_SWEEP_INTERVAL_MS: '200',
          DEVICE_STATUS_MIN_INTERVAL_MS: '250',
        }),
      );
    ingests = await Promise.all([start(), start()]);

    sub = createRedis(testEnv().redisUrl, { name: 'test-sub' });
    const frames = new Map<number, { online: boolean; lastInformAt: string }[]>();
    sub.on('message', (channel: string, message: string) => {
      const env = decodeEnvelope(message);
      if (env?.type !== 'event') return;
      const m = /private-device\.(\d+)$/.exec(channel);
      if (!m) return;
      const data = JSON.parse(env.data) as { device: { online: boolean; last_inform_at: string } };
      const list = frames.get(Number(m[1])) ?? frames.set(Number(m[1]), []).get(Number(m[1]))!;
      list.push({ online: data.device.online, lastInformAt: data.device.last_inform_at });
    });
    await sub.subscribe(...ids.map((id) => keys.pubsubChannel(`private-device.${id}`)));

    const token = world.collectorTokens.c!.token;
    const post = async (informs: unknown[]) => {
      const res = await fetch(`${ingests[informs.length % 2]!.url}/v1/devices/informs`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ informs }),
      });
      expect(res.status).toBe(200);
    };
    // Each flapper boots every 3 s (phases spread), goes offline 1 s after each boot; periodic devices
    // inform in the same batches every 100 ms tick, in turn. Transitions are over a second apart, well
    // above the 250 ms conflation window: conflation may not hide any of them (it hides only changes
    // closer than the window, and carries the latest state).
    const periodMs = 3000;
    const runMs = 9000;
    const t0 = Date.now();
    const nextBoot = new Map(flappers.map((id, i) => [id, t0 + (i / FLAPPERS) * periodMs]));
    const boots = new Map<number, number>();
    let cursor = 0;
    const posts: Promise<void>[] = [];
    while (Date.now() - t0 < runMs) {
      const now = Date.now();
      const items: unknown[] = [];
      for (let k = 0; k < 400; k++)
        items.push({
          deviceId: periodic[cursor++ % periodic.length]!,
          informedAt: new Date(now).toISOString(),
          eventCodes: ['2 PERIODIC'],
          periodicInformInterval: 300,
        });
      for (const [id, at] of nextBoot) {
        if (at > now) continue;
        nextBoot.set(id, at + periodMs);
        boots.set(id, (boots.get(id) ?? 0) + 1);
        items.push({
          deviceId: id,
          informedAt: new Date(now).toISOString(),
          eventCodes: ['1 BOOT'],
          periodicInformInterval: 1,
          uptimeS: 5,
        });
      }
      posts.push(post(items));
      await new Promise((r) => setTimeout(r, 100));
    }
    await Promise.all(posts);
    // Let the last deadlines pass and the detectors (and the conflation windows) catch up.
    await new Promise((r) => setTimeout(r, 3500));

    // What Postgres says happened: an offline alarm per offline transition, cleared by the boot after it.
    const alarms = await prisma.alarm.findMany({
      where: { deviceId: { in: flappers }, alarmIdentifier: 'alarmcast.device-offline' },
      select: { deviceId: true, clearedAt: true },
    });
    const offlineInDb = new Map<number, number>();
    const backInDb = new Map<number, number>();
    for (const a of alarms) {
      offlineInDb.set(a.deviceId!, (offlineInDb.get(a.deviceId!) ?? 0) + 1);
      if (a.clearedAt) backInDb.set(a.deviceId!, (backInDb.get(a.deviceId!) ?? 0) + 1);
    }
    const missing: string[] = [];
    let expectedOffline = 0;
    let seenOffline = 0;
    for (const id of flappers) {
      const got = frames.get(id) ?? [];
      // Transitions seen on the channel: every change of `online` between consecutive frames.
      let offline = 0;
      let back = 0;
      let prev = true;
      for (const f of got) {
        if (!f.online && prev) offline++;
        if (f.online && !prev) back++;
        prev = f.online;
      }
      if (back !== (backInDb.get(id) ?? 0))
        missing.push(`${id}: ${back}/${backInDb.get(id) ?? 0} back-online frames`);
      const want = offlineInDb.get(id) ?? 0;
      expectedOffline += want;
      seenOffline += Math.min(offline, want);
      if (offline !== want) missing.push(`${id}: ${offline}/${want} offline frames`);
    }
    const status = await prisma.deviceStatus.findMany({ where: { deviceId: { in: flappers } } });
    const stale: string[] = [];
    for (const s of status) {
      const [ver, st] = await redis.hmget(keys.stateKey(`private-device.${s.deviceId}`), 'ver', 'st');
      const online = st ? (JSON.parse(st) as { online: boolean }).online : undefined;
      if (online !== s.online)
        stale.push(`${s.deviceId}: pg v${s.version} ${s.online}, redis v${ver} ${online}`);
    }
    expect(expectedOffline).toBeGreaterThanOrEqual(FLAPPERS * 2);
    expect({ seenOffline, missing: missing.slice(0, 5), stale: stale.slice(0, 5) }).toEqual({
      seenOffline: expectedOffline,
      missing: [],
      stale: [],
    });
  }, 40_000);
});
