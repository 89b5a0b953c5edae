import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import fc from 'fast-check';
import { generateCollectorToken, hashCollectorToken } from '@alarmcast/auth';
import {
  DEVICE_INFORM_BATCH_MAX_ITEMS,
  ERROR_CATALOGUE,
  DEVICE_INFORM_MAX_PARAMETERS,
  DEVICE_OFFLINE_ALARM,
  DeviceStatusEventData,
  TenantDeviceSummaryEventData,
  WIRE_EVENTS,
  type ProvisionResult,
} from '@alarmcast/contracts';
import { createPrismaClient, provisionGraph, type PrismaClient } from '@alarmcast/db';
import { RedisKeys, createRedis, decodeEnvelope, type Redis } from '@alarmcast/redis';
import { createTestDatabase, testEnv, uniqueRedisPrefix } from '@alarmcast/testing';
import { parseIngestConfig } from '../src/config.js';
import { startIngest, type IngestServer } from '../src/server.js';

const graph = {
  tenants: [
    {
      ref: 'a',
      name: 'Tenant A',
      slug: 'tenant-a',
      devices: [
        { ref: 'da1', oui: '00D09E', productClass: 'HG8245', serialNumber: 'A1', name: 'Hall' },
        { ref: 'da2', oui: '00D09E', productClass: 'HG8245', serialNumber: 'A2' },
        { ref: 'da3', oui: '00D09E', productClass: 'HG8245', serialNumber: 'A3' },
      ],
      collectorTokens: [{ ref: 'ta', name: 'informs of A', scopes: ['informs' as const] }],
    },
    {
      ref: 'b',
      name: 'Tenant B',
      slug: 'tenant-b',
      devices: [{ ref: 'db1', oui: '00D09E', productClass: 'HG8245', serialNumber: 'B1' }],
    },
  ],
  collectorTokens: [
    { ref: 'platform', name: 'platform collector', scopes: ['alarms' as const, 'informs' as const] },
    { ref: 'legacy', name: 'a token as they were before scopes' },
  ],
};

interface Result {
  index: number;
  status: number;
  device_id?: number;
  outcome?: string;
  changed?: string[];
  online?: boolean;
  error?: { code: string; message: string; details?: unknown };
}

/** A Redis subscriber collecting what is published on some channels. */
async function listen(url: string, channels: string[]) {
  const sub = createRedis(url, { name: 'test-sub' });
  const got: { channel: string; event: string; data: unknown; seq: string | undefined }[] = [];
  sub.on('message', (channel: string, message: string) => {
    const env = decodeEnvelope(message);
    if (env?.type === 'event')
      got.push({ channel, event: env.event, data: JSON.parse(env.data), seq: env.eventId });
  });
  await sub.subscribe(...channels);
  return { got, close: () => sub.disconnect() };
}

describe('POST /v1/devices/informs', () => {
  const prefix = uniqueRedisPrefix();
  const keys = new RedisKeys(prefix);
  let prisma: PrismaClient;
  let world: ProvisionResult;
  let ingest: IngestServer;
  let second: IngestServer;
  let drop: () => Promise<void>;
  let redis: Redis;
  let dbUrl: string;

  const start = (over: Record<string, string> = {}) =>
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
        DEVICE_STATUS_MIN_INTERVAL_MS: '600',
        TENANT_SUMMARY_INTERVAL_MS: '500',
        ...over,
      }),
    );

  beforeAll(async () => {
    const db = await createTestDatabase(testEnv().postgresAdminUrl, testEnv().postgresTemplate);
    dbUrl = db.url;
    drop = db.drop;
    prisma = createPrismaClient(db.url);
    world = await provisionGraph(prisma, graph, {
      hashToken: hashCollectorToken,
      newToken: generateCollectorToken,
    });
    [ingest, second] = await Promise.all([start(), start()]);
    redis = createRedis(testEnv().redisUrl, { name: 'test' });
  });
  afterAll(async () => {
    await ingest?.close();
    await second?.close();
    await prisma?.$disconnect();
    await drop?.();
    redis?.disconnect();
  });

  const dev = (ref: string) => world.devices[ref]!.id;
  const post = (
    body: unknown,
    token = world.collectorTokens.platform!.token,
    server = ingest,
    path = '/v1/devices/informs',
  ) =>
    fetch(`${server.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
  const results = async (res: Response): Promise<Result[]> => {
    expect(res.status).toBe(200);
    return ((await res.json()) as { results: Result[] }).results;
  };
  let clock = Date.now() - 60_000;
  /** An inform with a fresh informedAt each time (informs of a device apply in informedAt order). */
  const inform = (deviceId: number, over: Record<string, unknown> = {}) => ({
    deviceId,
    informedAt: new Date((clock += 10)).toISOString(),
    eventCodes: ['2 PERIODIC'],
    periodicInformInterval: 3600,
    ...over,
  });

  it('needs the informs scope; a token of before scopes keeps alarms only', async () => {
    const legacy = world.collectorTokens.legacy!.token;
    const refused = await post({ informs: [inform(dev('da1'))] }, legacy);
    expect(refused.status).toBe(403);
    const body = (await refused.json()) as { error: { code: string; message: string; details: unknown } };
    expect(body.error.code).toBe('insufficient_scope');
    expect(body.error.message).toContain('informs');
    expect(body.error.details).toEqual({ scope: 'informs' });
    // The informs-only token may not raise alarms, on either alarm route.
    const alarm = {
      deviceId: dev('da1'),
      alarmIdentifier: 'x',
      eventType: 'e',
      probableCause: 'p',
      specificProblem: '',
      perceivedSeverity: 'Minor',
    };
    const ta = world.collectorTokens.ta!.token;
    for (const [path, payload] of [
      ['/v1/alarms', alarm],
      ['/v1/alarms/batch', { alarms: [alarm] }],
    ] as const) {
      const res = await post(payload, ta, ingest, path);
      expect(res.status, path).toBe(403);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('insufficient_scope');
    }
    // ...which the legacy token still may.
    expect((await post(alarm, legacy, ingest, '/v1/alarms')).status).toBe(202);
    expect(await prisma.deviceStatus.count({ where: { online: true } })).toBe(0);
    // Every tenant's summary is counted once at start, so its snapshot exists before any inform.
    await vi.waitFor(async () => {
      const stored = await redis.hget(keys.stateKey(`private-tenant.${world.tenants.a!.id}`), 'st');
      expect(JSON.parse(stored ?? 'null')).toMatchObject({ online: 0, offline: 3, total: 3 });
    });
  });

  it('answers every item: changed, unchanged, duplicate, unknown or invalid; one bad item fails nothing', async () => {
    const a2 = dev('da2');
    const first = inform(a2, {
      eventCodes: ['1 BOOT', 'M Reboot'],
      softwareVersion: '1.0.0',
      hardwareVersion: 'HW1',
      uptimeS: 12,
      parameters: { 'Device.WiFi.Radio.1.Channel': 6, 'Device.DeviceInfo.X_Temp': '40' },
    });
    const tooMany = Object.fromEntries(
      Array.from({ length: DEVICE_INFORM_MAX_PARAMETERS + 1 }, (_, i) => [`Device.X.${i}`, 'v']),
    );
    const r1 = await results(
      await post(
        {
          informs: [
            first,
            inform(999_999),
            inform(dev('db1')),
            inform(dev('da3'), { parameters: tooMany }),
            { ...inform(dev('da3')), eventCodes: [] },
            inform(dev('da3'), { parameters: { 'Not.A.Path': 'x' } }),
            { ...inform(dev('da3')), informedAt: new Date(Date.now() + 3_600_000).toISOString() },
          ],
        },
        world.collectorTokens.ta!.token,
      ),
    );
    expect(r1.map((r) => r.index)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(r1[6]).toMatchObject({ status: 422, error: { code: 'validation_failed' } });
    expect(r1[6]!.error!.message).toContain('informedAt');
    expect(r1[0]).toMatchObject({ status: 200, device_id: a2, outcome: 'changed', online: true });
    expect(r1[0]!.changed!.sort()).toEqual(
      [
        'online',
        'last_boot_at',
        'software_version',
        'hardware_version',
        'periodic_inform_interval_s',
        'parameters',
      ].sort(),
    );
    // Unknown, and another tenant's device for a scoped token: the same answer (no enumeration).
    for (const r of [r1[1]!, r1[2]!]) {
      expect(r).toMatchObject({
        status: 422,
        error: { code: 'unknown_device', details: { field: 'deviceId' } },
      });
    }
    expect(r1[3]).toMatchObject({ status: 422, error: { code: 'validation_failed' } });
    expect(r1[3]!.error!.message).toContain('parameters');
    expect(r1[4]!.error!.message).toContain('eventCodes');
    expect(r1[5]!.error!.message).toContain('Not.A.Path');

    const row = await prisma.deviceStatus.findUniqueOrThrow({ where: { deviceId: a2 } });
    expect(row).toMatchObject({
      online: true,
      softwareVersion: '1.0.0',
      hardwareVersion: 'HW1',
      uptimeS: 12n,
      periodicInformIntervalS: 3600,
      lastEventCodes: ['1 BOOT', 'M Reboot'],
      parameters: { 'Device.WiFi.Radio.1.Channel': '6', 'Device.DeviceInfo.X_Temp': '40' },
    });
    expect(row.lastBootAt?.toISOString()).toBe(first.informedAt);
    // Deadline: arrival + 1 × 3600 s + 0 s (this test's DEVICE_OFFLINE_INTERVALS and grace).
    expect(Math.abs(row.offlineAt!.getTime() - (Date.now() + 3600_000))).toBeLessThan(5000);

    // A retry of the same inform changes nothing; a later periodic one with nothing new moves the times only.
    const [retry] = await results(await post({ informs: [first] }));
    expect(retry).toMatchObject({ outcome: 'duplicate', changed: [], online: true });
    const [periodic] = await results(await post({ informs: [inform(a2, { uptimeS: 400 })] }));
    expect(periodic).toMatchObject({ outcome: 'unchanged', changed: [] });
    const [upgraded] = await results(
      await post({
        informs: [
          inform(a2, { softwareVersion: '1.0.1', parameters: { 'Device.WiFi.Radio.1.Channel': '6' } }),
        ],
      }),
    );
    expect(upgraded).toMatchObject({ outcome: 'changed', changed: ['software_version'] });
    const after = await prisma.deviceStatus.findUniqueOrThrow({ where: { deviceId: a2 } });
    expect(after).toMatchObject({ softwareVersion: '1.0.1', hardwareVersion: 'HW1', uptimeS: 400n });
    expect(after.version).toBe(row.version + 2n);

    // Two informs of one device in one batch: applied in informedAt order, both answered with the result.
    const later = inform(a2, { parameters: { 'Device.A.': '2' } });
    const earlier = {
      ...inform(a2, { parameters: { 'Device.A.': '1', 'Device.B.': '1' } }),
      informedAt: new Date(Date.parse(later.informedAt) - 5).toISOString(),
    };
    const pair = await results(await post({ informs: [later, earlier] }));
    expect(pair.map((r) => r.outcome)).toEqual(['changed', 'changed']);
    const merged = await prisma.deviceStatus.findUniqueOrThrow({ where: { deviceId: a2 } });
    expect(merged.parameters).toMatchObject({ 'Device.A.': '2', 'Device.B.': '1' });
    expect(merged.lastInformAt?.toISOString()).toBe(later.informedAt);
  });

  it('refuses a whole batch only for its envelope: empty, over 1,000 items, not JSON', async () => {
    for (const body of [
      { informs: [] },
      { informs: Array.from({ length: DEVICE_INFORM_BATCH_MAX_ITEMS + 1 }, () => ({})) },
      { informs: [], x: 1 },
    ]) {
      const res = await post(body);
      expect(res.status).toBe(422);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('validation_failed');
    }
    const big = await post({
      informs: Array.from({ length: DEVICE_INFORM_BATCH_MAX_ITEMS }, (_, i) =>
        inform(dev('da3'), { uptimeS: i }),
      ),
    });
    expect((await results(big)).length).toBe(DEVICE_INFORM_BATCH_MAX_ITEMS);
    expect((await post('{"informs":')).status).toBe(400);
  });

  it('publishes changes on private-device.{id}, conflated to one per interval with the union of changes, and keeps the latest state', async () => {
    const a1 = dev('da1');
    const channel = `private-device.${a1}`;
    const l = await listen(testEnv().redisUrl, [keys.pubsubChannel(channel)]);
    try {
      await results(await post({ informs: [inform(a1, { softwareVersion: 'v1' })] }));
      await vi.waitFor(() => expect(l.got).toHaveLength(1), { timeout: 3000 });
      // Within the 600 ms window: three changes (and one no-change) from two processes, one event at its end.
      await results(await post({ informs: [inform(a1, { softwareVersion: 'v2' })] }, undefined, second));
      await results(await post({ informs: [inform(a1, { hardwareVersion: 'h2' })] }));
      await results(await post({ informs: [inform(a1, { uptimeS: 5 })] }, undefined, second));
      await results(await post({ informs: [inform(a1, { parameters: { 'Device.X.': '1' } })] }));
      await vi.waitFor(() => expect(l.got).toHaveLength(2), { timeout: 3000 });
      await new Promise((r) => setTimeout(r, 800)); // nothing else comes
      expect(l.got).toHaveLength(2);
      const [e1, e2] = l.got.map((g) => ({ ...g, data: DeviceStatusEventData.parse(g.data) }));
      expect(e1!.event).toBe(WIRE_EVENTS.deviceStatusChanged);
      expect(e1!.data.device).toMatchObject({
        id: a1,
        name: 'Hall',
        serial_number: 'A1',
        online: true,
        software_version: 'v1',
      });
      expect(e1!.data.changed).toContain('online');
      expect(e2!.data.changed.sort()).toEqual(['hardware_version', 'parameters', 'software_version']);
      expect(e2!.data.device).toMatchObject({
        software_version: 'v2',
        hardware_version: 'h2',
        uptime_s: 5,
        parameters: { 'Device.X.': '1' },
      });
      expect(Number(e2!.seq)).toBe(Number(e1!.seq) + 1);
      // The stored state is the latest one, with its sequence.
      const stored = await redis.hmget(keys.stateKey(channel), 'st', 'seq');
      expect(JSON.parse(stored[0]!)).toEqual(e2!.data.device);
      expect(stored[1]).toBe(e2!.seq);
      // A periodic inform refreshes the stored state without an event.
      await results(await post({ informs: [inform(a1, { uptimeS: 77 })] }));
      await vi.waitFor(async () => {
        expect(JSON.parse((await redis.hget(keys.stateKey(channel), 'st'))!).uptime_s).toBe(77);
      });
      await new Promise((r) => setTimeout(r, 800));
      expect(l.got).toHaveLength(2);
    } finally {
      l.close();
    }
  });

  it('takes a silent device offline once (two detectors), raises the offline alarm, and the next inform clears it', async () => {
    const a3 = dev('da3');
    const channel = `private-device.${a3}`;
    const tenantA = world.tenants.a!.id;
    const l = await listen(testEnv().redisUrl, [
      keys.pubsubChannel(channel),
      keys.pubsubChannel(`private-tenant.${tenantA}`),
    ]);
    try {
      const [r] = await results(await post({ informs: [inform(a3, { periodicInformInterval: 1 })] }));
      expect(r!.online).toBe(true);
      const deadline = (await prisma.deviceStatus.findUniqueOrThrow({ where: { deviceId: a3 } })).offlineAt!;
      // Deadline: 1 × 1 s + 0 s. Both processes' detectors sweep every 200 ms; one takes it.
      await vi.waitFor(
        () =>
          expect(
            l.got.some(
              (g) =>
                g.channel.endsWith(channel) &&
                (g.data as { device: { online: boolean } }).device.online === false,
            ),
          ).toBe(true),
        { timeout: 5000, interval: 50 },
      );
      const detectedAfterMs = Date.now() - deadline.getTime();
      expect(detectedAfterMs).toBeLessThan(5000);
      const offline = await prisma.alarm.findMany({
        where: { deviceId: a3, alarmIdentifier: DEVICE_OFFLINE_ALARM.alarmIdentifier },
      });
      expect(offline).toHaveLength(1);
      expect(offline[0]).toMatchObject({ perceivedSeverity: 'Major', clearedAt: null, tenantId: tenantA });
      const events = await prisma.outboxEvent.findMany({ where: { alarmId: offline[0]!.id } });
      expect(events.map((e) => e.kind)).toEqual(['alarm.created']);
      const status = await prisma.deviceStatus.findUniqueOrThrow({ where: { deviceId: a3 } });
      expect(status).toMatchObject({ online: false, offlineAlarmId: offline[0]!.id });
      await new Promise((r) => setTimeout(r, 600)); // both detectors have swept again: still one of each
      expect(
        await prisma.alarm.count({
          where: { deviceId: a3, alarmIdentifier: DEVICE_OFFLINE_ALARM.alarmIdentifier },
        }),
      ).toBe(1);
      const wentOffline = l.got.filter(
        (g) => g.channel.endsWith(channel) && (g.data as { changed: string[] }).changed.includes('online'),
      );
      expect(
        wentOffline.filter((g) => !(g.data as { device: { online: boolean } }).device.online),
      ).toHaveLength(1);

      // Back: the alarm is cleared (with its outbox event), the device online again, an event says so.
      const [back] = await results(await post({ informs: [inform(a3, { periodicInformInterval: 3600 })] }));
      expect(back).toMatchObject({ outcome: 'changed', online: true });
      expect(back!.changed).toContain('online');
      const cleared = await prisma.alarm.findUniqueOrThrow({ where: { id: offline[0]!.id } });
      expect(cleared.clearedAt).not.toBeNull();
      expect(
        (await prisma.outboxEvent.findMany({ where: { alarmId: cleared.id }, orderBy: { id: 'asc' } })).map(
          (e) => e.kind,
        ),
      ).toEqual(['alarm.created', 'alarm.cleared']);
      expect(
        (await prisma.deviceStatus.findUniqueOrThrow({ where: { deviceId: a3 } })).offlineAlarmId,
      ).toBeNull();
      await vi.waitFor(
        () => {
          const last = l.got.filter((g) => g.channel.endsWith(channel)).at(-1)!;
          expect((last.data as { device: { online: boolean } }).device.online).toBe(true);
        },
        { timeout: 3000 },
      );

      // The tenant's summary followed, at most once per 500 ms.
      await vi.waitFor(
        () => {
          const summaries = l.got
            .filter((g) => g.event === WIRE_EVENTS.tenantDeviceSummary)
            .map((g) => TenantDeviceSummaryEventData.parse(g.data));
          expect(summaries.length).toBeGreaterThan(0);
          expect(summaries.at(-1)!.summary).toMatchObject({ tenant_id: tenantA, total: 3 });
        },
        { timeout: 5000 },
      );
    } finally {
      l.close();
    }
  });

  it('answers any body with a documented status and code, never a 500 (property)', async () => {
    const item = fc.oneof(
      fc.anything(),
      fc.record(
        {
          deviceId: fc.oneof(fc.constant(dev('da1')), fc.integer(), fc.string()),
          informedAt: fc.oneof(
            fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
            fc.string(),
          ),
          eventCodes: fc.oneof(fc.array(fc.string({ maxLength: 70 }), { maxLength: 3 }), fc.anything()),
          periodicInformInterval: fc.oneof(fc.integer(), fc.double()),
          softwareVersion: fc.string({ maxLength: 70 }),
          uptimeS: fc.oneof(fc.integer(), fc.bigInt().map(String)),
          parameters: fc.dictionary(
            fc.string({ maxLength: 20 }).map((k) => `Device.${k}`),
            fc.anything(),
            {
              maxKeys: 5,
            },
          ),
        },
        { requiredKeys: [] },
      ),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(fc.anything(), fc.record({ informs: fc.array(item, { maxLength: 4 }) })),
        async (body) => {
          const res = await post(JSON.stringify(body) ?? 'null');
          expect([200, 400, 422]).toContain(res.status);
          const answer = (await res.json()) as { results?: Result[]; error?: { code: string } };
          if (res.status !== 200) {
            expect(Object.keys(ERROR_CATALOGUE)).toContain(answer.error!.code);
            return;
          }
          for (const r of answer.results!) {
            expect([200, 422]).toContain(r.status);
            if (r.status === 422) expect(['validation_failed', 'unknown_device']).toContain(r.error!.code);
            else expect(['changed', 'unchanged', 'duplicate']).toContain(r.outcome);
          }
        },
      ),
      { numRuns: 60 },
    );
  }, 60_000);

  it('clears an offline alarm that the inform bringing its device back could not see (the sweep)', async () => {
    // What the race leaves: the detector's alarm committed after the returning inform's snapshot, so the
    // device is online and still points at an active offline alarm.
    const a1 = dev('da1');
    const alarm = await prisma.alarm.create({
      data: {
        tenantId: world.tenants.a!.id,
        deviceId: a1,
        alarmIdentifier: DEVICE_OFFLINE_ALARM.alarmIdentifier,
        eventType: DEVICE_OFFLINE_ALARM.eventType,
        probableCause: DEVICE_OFFLINE_ALARM.probableCause,
        specificProblem: DEVICE_OFFLINE_ALARM.specificProblem,
        perceivedSeverity: 'Major',
        raisedAt: new Date(),
        changedAt: new Date(),
      },
    });
    await prisma.deviceStatus.update({
      where: { deviceId: a1 },
      data: { online: true, offlineAlarmId: alarm.id },
    });
    await vi.waitFor(
      async () => {
        expect((await prisma.alarm.findUniqueOrThrow({ where: { id: alarm.id } })).clearedAt).not.toBeNull();
        expect(
          (await prisma.deviceStatus.findUniqueOrThrow({ where: { deviceId: a1 } })).offlineAlarmId,
        ).toBeNull();
      },
      { timeout: 3000 },
    );
    expect((await prisma.outboxEvent.findMany({ where: { alarmId: alarm.id } })).map((e) => e.kind)).toEqual([
      'alarm.cleared',
    ]);
  });

  it('a tenant may turn the offline alarm off', async () => {
    const b1 = dev('db1');
    await prisma.tenant.update({ where: { id: world.tenants.b!.id }, data: { deviceOfflineAlarm: false } });
    await results(await post({ informs: [inform(b1, { periodicInformInterval: 1 })] }));
    await vi.waitFor(
      async () => {
        expect((await prisma.deviceStatus.findUniqueOrThrow({ where: { deviceId: b1 } })).online).toBe(false);
      },
      { timeout: 5000 },
    );
    expect(await prisma.alarm.count({ where: { deviceId: b1 } })).toBe(0);
  });
});
