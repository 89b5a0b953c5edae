import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Queue, QueueEvents } from 'bullmq';
import { generateCollectorToken, hashCollectorToken } from '@alarmcast/auth';
import {
  BROADCAST_QUEUE,
  JOB_CATALOGUE,
  OUTBOX_KINDS,
  PubSubEnvelope,
  type ChannelEventEnvelope,
  broadcastJobId,
  broadcastJobs,
  type OutboxKind,
  type ProvisionResult,
} from '@alarmcast/contracts';
import { createPrismaClient, provisionGraph, type PrismaClient } from '@alarmcast/db';
import { RedisKeys, createRedis, type Redis } from '@alarmcast/redis';
import { createTestDatabase, testEnv, uniqueRedisPrefix } from '@alarmcast/testing';
import { parseResolverConfig } from '../src/config.js';
import { startResolver, type ResolverProcess } from '../src/resolver-process.js';

const user = (ref: string, active = true) => ({ ref, email: `${ref}@example.test`, name: ref, active });
const graph = {
  tenants: [
    {
      ref: 'a',
      name: 'A',
      slug: 'a',
      users: [user('a1'), user('a2'), user('a-inactive', false)],
      devices: [{ ref: 'da', oui: '00D09E', productClass: 'PC', serialNumber: 'A1' }],
    },
    { ref: 'b', name: 'B', slug: 'b', users: [user('b1'), user('b2')] },
  ],
  platformUsers: [user('ops')],
  // b1 sees da through an explicit share; a1's own share of da must not make it receive twice.
  shares: [
    { user: 'b1', device: 'da' },
    { user: 'a1', device: 'da' },
  ],
};

describe('recipient-resolver worker (real Postgres, Redis, BullMQ)', () => {
  let prisma: PrismaClient;
  let redis: Redis;
  let sub: Redis;
  let queue: Queue;
  let events: QueueEvents;
  let resolver: ResolverProcess;
  let world: ProvisionResult;
  let dropDb: () => Promise<void>;
  const keys = new RedisKeys(uniqueRedisPrefix());
  const received: ChannelEventEnvelope[] = [];

  beforeAll(async () => {
    const db = await createTestDatabase(testEnv().postgresAdminUrl, testEnv().postgresTemplate);
    dropDb = db.drop;
    prisma = createPrismaClient(db.url);
    world = await provisionGraph(prisma, graph, {
      hashToken: hashCollectorToken,
      newToken: generateCollectorToken,
    });
    redis = createRedis(testEnv().redisUrl, { name: 'test' });
    sub = createRedis(testEnv().redisUrl, { name: 'test-sub' });
    await sub.psubscribe(`${keys.prefix}:ch:*`);
    sub.on('pmessage', (_p, _c, m) => received.push(userEvent(m)));
    queue = new Queue(BROADCAST_QUEUE, { connection: redis, prefix: keys.bullPrefix });
    events = new QueueEvents(BROADCAST_QUEUE, {
      connection: createRedis(testEnv().redisUrl, { name: 'qe', maxRetriesPerRequest: null }),
      prefix: keys.bullPrefix,
    });
    await events.waitUntilReady();
    resolver = await startResolver(
      parseResolverConfig({
        DATABASE_URL: db.url,
        REDIS_URL: testEnv().redisUrl,
        REDIS_PREFIX: keys.prefix,
        LOG_LEVEL: 'silent',
        RESOLVER_METRICS_PORT: '0',
      }),
    );
  });
  afterAll(async () => {
    await resolver.close();
    await events.close();
    await queue.close();
    redis.disconnect();
    sub.disconnect();
    await prisma.$disconnect();
    await dropDb();
  });

  async function outboxEvent(
    tenantId: number,
    deviceId: number | null,
    kind: OutboxKind = 'alarm.created',
    alarmId = 1n,
  ): Promise<string> {
    const e = await prisma.outboxEvent.create({
      data: {
        tenantId,
        deviceId,
        kind,
        alarmId,
        payload: { alarm: { id: String(alarmId), tenant_id: tenantId } },
      },
    });
    return e.id.toString();
  }

  async function broadcast(eventId: string): Promise<unknown> {
    const job = await queue.add(
      'BroadcastAlarmToTenant',
      { eventId },
      { ...JOB_CATALOGUE.BroadcastAlarmToTenant.options, jobId: broadcastJobId(eventId) },
    );
    return job.waitUntilFinished(events, 10_000);
  }

  it('sends a device alarm to active tenant members and explicit-share users, each once', async () => {
    const eventId = await outboxEvent(world.tenants.a!.id, world.devices.da!.id);
    expect(await broadcast(eventId)).toEqual({ recipients: 3, delivered: 3 });
    // Marked before the job completes, so the outbox relay leaves it alone from now on.
    expect(
      (await prisma.outboxEvent.findUniqueOrThrow({ where: { id: BigInt(eventId) } })).broadcastAt,
    ).toBeInstanceOf(Date);
    await vi.waitFor(() => expect(received).toHaveLength(3));
    expect(received.map((e) => e.channel).sort()).toEqual(
      [world.users.a1!.id, world.users.a2!.id, world.users.b1!.id].map((id) => `private-user.${id}`).sort(),
    );
    // Re-running the same event (a retry, a relay re-enqueue) delivers nothing more.
    await queue.remove(broadcastJobId(eventId));
    expect(await broadcast(eventId)).toEqual({ recipients: 3, delivered: 0 });
  });

  it('sends a device-less alarm to the tenant members only', async () => {
    received.length = 0;
    const eventId = await outboxEvent(world.tenants.b!.id, null);
    expect(await broadcast(eventId)).toEqual({ recipients: 2, delivered: 2 });
    await vi.waitFor(() => expect(received).toHaveLength(2));
    expect(received.map((e) => e.channel).sort()).toEqual(
      [world.users.b1!.id, world.users.b2!.id].map((id) => `private-user.${id}`).sort(),
    );
  });

  it.each(Object.entries(OUTBOX_KINDS))(
    'publishes an %s outbox event under its Laravel event name %s',
    async (kind, eventName) => {
      received.length = 0;
      const eventId = await outboxEvent(world.tenants.b!.id, null, kind as OutboxKind);
      expect(await broadcast(eventId)).toEqual({ recipients: 2, delivered: 2 });
      await vi.waitFor(() => expect(received).toHaveLength(2));
      expect(received.map((e) => e.event)).toEqual([eventName, eventName]);
    },
  );

  it('publishes alarm.cleared as App\\Events\\AlarmCleared', async () => {
    received.length = 0;
    const eventId = await outboxEvent(world.tenants.a!.id, world.devices.da!.id, 'alarm.cleared');
    expect(await broadcast(eventId)).toEqual({ recipients: 3, delivered: 3 });
    await vi.waitFor(() => expect(received).toHaveLength(3));
    for (const e of received) {
      expect(e.event).toBe('App\\Events\\AlarmCleared');
      expect(JSON.parse(e.data)).toMatchObject({ alarm: { id: '1' }, event_id: e.eventId });
    }
  });

  it("delivers a device's earlier events first when their jobs have not run yet", async () => {
    received.length = 0;
    const tenant = world.tenants.a!.id;
    const device = world.devices.da!.id;
    // One alarm raised, changed and cleared, then another alarm of the same device: four commits in order.
    const ids = [
      await outboxEvent(tenant, device, 'alarm.created', 10n),
      await outboxEvent(tenant, device, 'alarm.updated', 10n),
      await outboxEvent(tenant, device, 'alarm.cleared', 10n),
      await outboxEvent(tenant, device, 'alarm.created', 11n),
    ];
    // The last job runs first (jobs run concurrently; any of them may be first)...
    expect(await broadcast(ids[3]!)).toEqual({ recipients: 3, delivered: 3 });
    // ...and yet every user's log holds all four, in commit order.
    await vi.waitFor(() => expect(received).toHaveLength(12));
    const expected = ['created 10', 'updated 10', 'cleared 10', 'created 11'];
    for (const u of [world.users.a1!.id, world.users.a2!.id, world.users.b1!.id]) {
      const got = received
        .filter((e) => e.channel === `private-user.${u}`)
        .map(
          (e) =>
            `${e.event.replace(/^App\\Events\\Alarm/, '').toLowerCase()} ${(JSON.parse(e.data) as { alarm: { id: string } }).alarm.id}`,
        );
      expect(got).toEqual(expected);
      const log = await redis.xrange(keys.userLog(u), '-', '+');
      expect(log.slice(-4).map(([id]) => id)).toEqual(
        received.filter((e) => e.channel === `private-user.${u}`).map((e) => e.eventId),
      );
    }
    // Their own jobs find everyone served already, and the relay has nothing left to redo.
    for (const id of ids.slice(0, 3)) expect(await broadcast(id)).toEqual({ recipients: 3, delivered: 0 });
    const pending = await prisma.outboxEvent.count({
      where: { id: { in: ids.map(BigInt) }, broadcastAt: null },
    });
    expect(pending).toBe(0);
    expect(received).toHaveLength(12);
  });

  it('does not let an earlier event that cannot be delivered hold up the later ones', async () => {
    received.length = 0;
    const stuck = await prisma.outboxEvent.create({
      data: { tenantId: world.tenants.b!.id, kind: 'no.such.kind', alarmId: 20n, payload: {} },
    });
    const later = await outboxEvent(world.tenants.b!.id, null, 'alarm.updated', 20n);
    expect(await broadcast(later)).toEqual({ recipients: 2, delivered: 2 });
    await vi.waitFor(() => expect(received).toHaveLength(2));
    expect(received.map((e) => e.event)).toEqual(['App\\Events\\AlarmUpdated', 'App\\Events\\AlarmUpdated']);
    expect((await prisma.outboxEvent.findUniqueOrThrow({ where: { id: stuck.id } })).broadcastAt).toBeNull();
  });

  it('broadcasts every event of a BroadcastEvents job, skipping one that is gone without failing the rest', async () => {
    received.length = 0;
    const ids = [
      await outboxEvent(world.tenants.a!.id, world.devices.da!.id, 'alarm.created', 31n),
      await outboxEvent(world.tenants.b!.id, null, 'alarm.created', 32n),
    ];
    const [job] = broadcastJobs([...ids, '987654320']);
    expect(job!.name).toBe('BroadcastEvents');
    const added = await queue.add(job!.name, job!.data, job!.opts);
    // 3 recipients of the device alarm (a1, a2, b1) and 2 of tenant b's (b1, b2); the missing event adds none.
    expect(await added.waitUntilFinished(events, 10_000)).toEqual({ recipients: 5, delivered: 5 });
    await vi.waitFor(() => expect(received).toHaveLength(5));
    for (const id of ids) {
      expect(
        (await prisma.outboxEvent.findUniqueOrThrow({ where: { id: BigInt(id) } })).broadcastAt,
      ).toBeInstanceOf(Date);
    }
    const bad = await queue.add('BroadcastEvents', { eventIds: ['1'] }, { attempts: 5 });
    await expect(bad.waitUntilFinished(events, 10_000)).rejects.toThrow(/invalid BroadcastEvents payload/);
  });

  it('fails a job with an invalid payload or an unknown event without retrying', async () => {
    const bad = await queue.add('BroadcastAlarmToTenant', { eventId: 'DROP TABLE' }, { attempts: 5 });
    await expect(bad.waitUntilFinished(events, 10_000)).rejects.toThrow(
      /invalid BroadcastAlarmToTenant payload/,
    );
    expect((await queue.getJob(bad.id!))?.attemptsMade).toBe(1);
    const missing = await queue.add('BroadcastAlarmToTenant', { eventId: '987654321' }, { attempts: 5 });
    await expect(missing.waitUntilFinished(events, 10_000)).rejects.toThrow(/not found/);
    expect((await queue.getJob(missing.id!))?.attemptsMade).toBe(1);
  });
});

/** An `event` envelope (one channel's event); a batch on a user channel would be a bug. */
function userEvent(message: string): ChannelEventEnvelope {
  const envelope = PubSubEnvelope.parse(JSON.parse(message));
  if (envelope.type !== 'event') throw new Error(`a ${envelope.type} envelope on a user channel`);
  return envelope;
}
