import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import pg from 'pg';
import { generateCollectorToken, hashCollectorToken, signUserJwt } from '@alarmcast/auth';
import {
  campaignFailingAlarmIdentifier,
  userChannel,
  type CampaignWire,
  type CollectorScope,
  type ProvisionResult,
  type TaskWire,
} from '@alarmcast/contracts';
import { createPrismaClient, provisionGraph, type PrismaClient } from '@alarmcast/db';
import { RedisKeys, createRedis, decodeEnvelope, type Redis } from '@alarmcast/redis';
import { createTestDatabase, testEnv, uniqueRedisPrefix } from '@alarmcast/testing';
import { APP, JWT_SECRET, Pusher, startStack, type Stack } from '../src/stack.js';
import {
  spawnEdgeProcess,
  spawnIngestProcess,
  spawnResolverProcess,
  stopService,
} from '../src/fault-helpers.js';
import type { SpawnedService } from '../src/spawned-stack.js';

const SCOPES: CollectorScope[] = ['tasks', 'campaigns'];
const u = (ref: string) => ({ ref, email: `${ref}@example.test`, name: ref });
const d = (ref: string) => ({ ref, oui: '00D09E', productClass: 'HG8245', serialNumber: ref });

interface Received {
  event: string;
  data: {
    task?: TaskWire;
    alarm?: { alarm_identifier: string; perceived_severity: string };
    event_id?: string;
  };
}

/** A real pusher-js client on `private-user.{id}`; `resumeFrom` adds `last_event_id` to its subscribe, as the SDK does. */
async function userSocket(edge: { port: number; url: string }, userId: number, resumeFrom?: string) {
  const pusher = new Pusher(APP.key, {
    cluster: 'mt1',
    wsHost: '127.0.0.1',
    wsPort: edge.port,
    forceTLS: false,
    enabledTransports: ['ws'],
    disableStats: true,
    channelAuthorization: {
      endpoint: `${edge.url}/broadcasting/auth`,
      transport: 'ajax',
      headers: { Authorization: `Bearer ${await signUserJwt(JWT_SECRET, userId)}` },
    },
  });
  if (resumeFrom !== undefined) {
    const send = pusher.send_event.bind(pusher);
    pusher.send_event = (name: string, data: unknown, channel?: string) =>
      send(
        name,
        name === 'pusher:subscribe' ? { ...(data as object), last_event_id: resumeFrom } : data,
        channel,
      );
  }
  const received: Received[] = [];
  const channel = pusher.subscribe(userChannel(userId));
  channel.bind_global((event: string, data: unknown) => {
    if (!event.startsWith('pusher')) received.push({ event, data: data as Received['data'] });
  });
  await new Promise<void>((resolve, reject) => {
    channel.bind('pusher:subscription_succeeded', () => resolve());
    channel.bind('pusher:subscription_error', (e: unknown) => reject(new Error(JSON.stringify(e))));
  });
  return { pusher, received };
}

describe('task outcomes reach their requester through the reliable path, across a reconnect', () => {
  let prisma: PrismaClient;
  let stack: Stack;
  let world: ProvisionResult;
  let dropDb: () => Promise<void>;

  beforeAll(async () => {
    const db = await createTestDatabase(testEnv().postgresAdminUrl, testEnv().postgresTemplate);
    dropDb = db.drop;
    prisma = createPrismaClient(db.url);
    world = await provisionGraph(
      prisma,
      {
        tenants: [
          {
            ref: 'A',
            name: 'A',
            slug: 'a',
            users: [u('requester'), u('colleague')],
            devices: [d('cpe')],
            collectorTokens: [{ ref: 'acs', name: 'acs', scopes: SCOPES }],
          },
        ],
      },
      { hashToken: hashCollectorToken, newToken: generateCollectorToken },
    );
    stack = await startStack({
      databaseUrl: db.url,
      redisUrl: testEnv().redisUrl,
      redisPrefix: uniqueRedisPrefix(),
    });
  });
  afterAll(async () => {
    await stack.close();
    await prisma.$disconnect();
    await dropDb();
  });

  const put = async (taskId: string, body: Record<string, unknown>) => {
    const r = await fetch(`${stack.ingest.url}/v1/tasks/${taskId}`, {
      method: 'PUT',
      headers: {
        authorization: `Bearer ${world.collectorTokens.acs!.token}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify({
        deviceId: world.devices.cpe!.id,
        kind: 'reboot',
        requestedByUserId: world.users.requester!.id,
        ...body,
      }),
    });
    expect(r.status).toBeLessThan(300);
  };

  it('gets every change while away, in order, after resuming from its last event id', async () => {
    const edge = stack.edges[0]!;
    const requester = world.users.requester!.id;
    const first = await userSocket(edge, requester);
    const colleague = await userSocket(edge, world.users.colleague!.id);
    await put('reboot-1', { state: 'queued' });
    await put('reboot-1', { state: 'dispatched' });
    await vi.waitFor(() => expect(first.received).toHaveLength(2));
    expect(first.received.map((e) => [e.event, e.data.task!.state])).toEqual([
      ['App\\Events\\DeviceTaskUpdated', 'queued'],
      ['App\\Events\\DeviceTaskUpdated', 'dispatched'],
    ]);
    const position = first.received.at(-1)!.data.event_id!;
    expect(position).toMatch(/^\d+-\d+$/);
    first.pusher.disconnect();

    // While the requester is away: the task runs and succeeds, a replay (nothing) and a second task.
    await put('reboot-1', { state: 'running', progress: 50 });
    await put('reboot-1', { state: 'succeeded' });
    await put('reboot-1', { state: 'succeeded' });
    await put('reboot-2', { state: 'queued', kind: 'factoryReset' });

    const back = await userSocket(edge, requester, position);
    await vi.waitFor(() => expect(back.received).toHaveLength(3));
    expect(back.received.map((e) => [e.data.task!.id, e.data.task!.state, e.data.task!.progress])).toEqual([
      ['reboot-1', 'running', 50],
      ['reboot-1', 'succeeded', 100],
      ['reboot-2', 'queued', 0],
    ]);
    // live after the replay
    await put('reboot-2', {
      state: 'failed',
      kind: 'factoryReset',
      faultCode: 9001,
      faultString: 'Request denied',
    });
    await vi.waitFor(() => expect(back.received).toHaveLength(4));
    expect(back.received[3]!.data.task).toMatchObject({ state: 'failed', fault_code: 9001 });
    // the colleague of the same tenant asked for nothing: not on their personal channel
    expect(colleague.received).toEqual([]);
    back.pusher.disconnect();
    colleague.pusher.disconnect();
  });

  it('sends a device’s open tasks as its snapshot on every subscribe, then live changes', async () => {
    const edge = stack.edges[0]!;
    const colleague = world.users.colleague!.id;
    const device = world.devices.cpe!.id;
    await put('upgrade-1', { kind: 'download', state: 'running', phase: 'downloading', progress: 30 });
    await put('params-1', { kind: 'setParameterValues', state: 'queued' });
    await put('done-1', { kind: 'reboot', state: 'succeeded' });
    const watcher = await stateSocket(edge, colleague, `private-device.${device}`);
    await vi.waitFor(() =>
      expect(watcher.received.filter((e) => e.data.snapshot).map((e) => e.data.task!.id)).toEqual([
        'upgrade-1',
        'params-1',
      ]),
    );
    expect(watcher.received.every((e) => e.event === 'App\\Events\\DeviceTaskUpdated')).toBe(true);
    await put('upgrade-1', { kind: 'download', state: 'running', phase: 'applying' });
    await vi.waitFor(() =>
      expect(watcher.received.at(-1)!.data.task).toMatchObject({ id: 'upgrade-1', progress: 70 }),
    );
    expect(watcher.received.at(-1)!.data.snapshot).toBeUndefined();
    await put('upgrade-1', { kind: 'download', state: 'succeeded' });
    await vi.waitFor(() => expect(watcher.received.at(-1)!.data.task!.state).toBe('succeeded'));
    watcher.pusher.disconnect();
    // a new subscriber: only what is still open
    const later = await stateSocket(edge, colleague, `private-device.${device}`);
    await vi.waitFor(() => expect(later.received.map((e) => e.data.task!.id)).toEqual(['params-1']));
    later.pusher.disconnect();
  });
});

/** A real pusher-js client for `channel` (a state channel), recording what it receives. */
async function stateSocket(edge: { port: number; url: string }, userId: number, channelName: string) {
  const pusher = new Pusher(APP.key, {
    cluster: 'mt1',
    wsHost: '127.0.0.1',
    wsPort: edge.port,
    forceTLS: false,
    enabledTransports: ['ws'],
    disableStats: true,
    channelAuthorization: {
      endpoint: `${edge.url}/broadcasting/auth`,
      transport: 'ajax',
      headers: { Authorization: `Bearer ${await signUserJwt(JWT_SECRET, userId)}` },
    },
  });
  const received: { event: string; data: { task?: TaskWire; campaign?: CampaignWire; snapshot?: true } }[] =
    [];
  const channel = pusher.subscribe(channelName);
  channel.bind_global((event: string, data: unknown) => {
    if (!event.startsWith('pusher'))
      received.push({ event, data: data as (typeof received)[number]['data'] });
  });
  await new Promise<void>((resolve, reject) => {
    channel.bind('pusher:subscription_succeeded', () => resolve());
    channel.bind('pusher:subscription_error', (e: unknown) => reject(new Error(JSON.stringify(e))));
  });
  return { pusher, received };
}

/**
 * A campaign reported by three ingest processes at once (real processes, one database), with a resolver and
 * an edge for the threshold alarm: the counts stay exact, every progress broadcast is a consistent snapshot,
 * the last one is the truth, and the tenant's operators get the alarm and its clear on their sockets.
 */
describe('campaign counts under concurrent reports from several ingest processes', () => {
  const DEVICES = 40;
  let prisma: PrismaClient;
  let world: ProvisionResult;
  let dropDb: () => Promise<void>;
  let dbUrl: string;
  let sub: Redis;
  const prefix = uniqueRedisPrefix();
  const ingests: SpawnedService[] = [];
  const others: SpawnedService[] = [];
  const progress: { at: number; campaign: CampaignWire }[] = [];

  beforeAll(async () => {
    const db = await createTestDatabase(testEnv().postgresAdminUrl, testEnv().postgresTemplate);
    dropDb = db.drop;
    dbUrl = db.url;
    prisma = createPrismaClient(db.url);
    world = await provisionGraph(
      prisma,
      {
        tenants: [
          {
            ref: 'A',
            name: 'A',
            slug: 'a',
            users: [u('noc')],
            devices: Array.from({ length: DEVICES }, (_, i) => d(`cpe${i}`)),
            collectorTokens: [{ ref: 'acs', name: 'acs', scopes: SCOPES }],
          },
        ],
      },
      { hashToken: hashCollectorToken, newToken: generateCollectorToken },
    );
    const keys = new RedisKeys(prefix);
    sub = createRedis(testEnv().redisUrl, { name: 'campaign-e2e-sub' });
    await sub.subscribe(keys.pubsubChannel('private-campaign.fleet'));
    sub.on('message', (_c, message) => {
      const env = decodeEnvelope(message);
      if (env?.type === 'event' && env.event === 'App\\Events\\FirmwareCampaignProgress')
        progress.push({
          at: Date.now(),
          campaign: (JSON.parse(env.data) as { campaign: CampaignWire }).campaign,
        });
    });
    const env = {
      databaseUrl: db.url,
      redisUrl: testEnv().redisUrl,
      redisPrefix: prefix,
      extra: {
        JWT_SECRET,
        PUSHER_APP_ID: APP.id,
        PUSHER_APP_KEY: APP.key,
        PUSHER_APP_SECRET: APP.secret,
        LOG_LEVEL: 'warn',
        RATE_LIMIT_ALARMS_PER_TOKEN: '0',
        RATE_LIMIT_ALARMS_PER_IP: '0',
        CAMPAIGN_FAILURE_MIN_SAMPLE: '10',
      },
    };
    const spawned = await Promise.all([
      spawnIngestProcess(env, 'ingest-0'),
      spawnIngestProcess(env, 'ingest-1'),
      spawnIngestProcess(env, 'ingest-2'),
      spawnResolverProcess(env, 'resolver'),
      spawnEdgeProcess(env, 'edge'),
    ]);
    ingests.push(...spawned.slice(0, 3));
    others.push(...spawned.slice(3));
  }, 120_000);
  afterAll(async () => {
    await Promise.all([...ingests, ...others].map((s) => stopService(s)));
    sub.disconnect();
    await prisma.$disconnect();
    await dropDb();
  });

  it('ends with exact counts, equal to a recount, every broadcast a consistent snapshot, and raises/clears the alarm', async () => {
    const token = world.collectorTokens.acs!.token;
    const deviceIds = Array.from({ length: DEVICES }, (_, i) => world.devices[`cpe${i}`]!.id);
    const refusals: string[] = [];
    // As a collector does: a 503 (overloaded, or Postgres slower than the pool's connect timeout on this
    // shared machine) is retried after its Retry-After; the refusals are kept for the failure message.
    const call = async (i: number, method: string, path: string, body: unknown): Promise<Response> => {
      for (let attempt = 0; ; attempt++) {
        const r = await fetch(`${ingests[(i + attempt) % ingests.length]!.url}${path}`, {
          method,
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
        if (r.status !== 503 || attempt === 5) return r;
        refusals.push(await r.text());
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    };
    const created = await call(0, 'POST', '/v1/campaigns', {
      campaignId: 'fleet',
      tenantId: world.tenants.A!.id,
      name: 'fleet to 3.1',
      targetVersion: '3.1',
      deviceIds,
      failureThresholdPercent: 25,
    });
    expect(created.status).toBe(201);
    const edge = others[1]!;
    const noc = await userSocket(edge, world.users.noc!.id);

    // Each device's task goes through the phases, every report to another ingest process than the one
    // before, all devices at once; a third of them fail. Replays and stale reports are thrown in (each is
    // answered 200 replay or 409 and must change nothing).
    let applied = 0;
    await Promise.all(
      deviceIds.map(async (deviceId, i) => {
        const steps: Record<string, unknown>[] = [
          { state: 'queued' },
          { state: 'dispatched' },
          { state: 'running', phase: 'downloading' },
          { state: 'running', phase: 'downloading', progress: 40 },
          { state: 'running', phase: 'applying' },
          i % 3 === 0 ? { state: 'running', phase: 'rebooting', faultCode: 9010 } : { state: 'succeeded' },
        ];
        for (const [k, step] of steps.entries()) {
          const body = {
            deviceId,
            kind: 'download',
            campaignId: 'fleet',
            targetSoftwareVersion: '3.1',
            ...step,
          };
          const r = await call(i + k, 'PUT', `/v1/tasks/fleet-${deviceId}`, body);
          expect(r.status, await r.clone().text()).toBeLessThan(300);
          applied++;
          if (k === 2) {
            const [replay, stale] = await Promise.all([
              call(i + k + 1, 'PUT', `/v1/tasks/fleet-${deviceId}`, body),
              call(i + k + 2, 'PUT', `/v1/tasks/fleet-${deviceId}`, {
                ...body,
                state: 'queued',
                phase: undefined,
              }),
            ]);
            expect([replay.status, stale.status]).toEqual([200, 409]);
          }
        }
      }),
    );
    expect(applied).toBe(DEVICES * 6);
    if (refusals.length > 0) console.warn(`retried after 503: ${refusals.join(' | ')}`);
    expect(refusals.join(' ')).not.toContain('internal_error');
    const failed = deviceIds.filter((_, i) => i % 3 === 0).length;
    const truth = {
      pending: 0,
      queued: 0,
      dispatched: 0,
      running: 0,
      succeeded: DEVICES - failed,
      failed,
      cancelled: 0,
      expired: 0,
    };
    const res = await fetch(`${ingests[0]!.url}/v1/campaigns/fleet`, {
      headers: { authorization: `Bearer ${await signUserJwt(JWT_SECRET, world.users.noc!.id)}` },
    });
    const { campaign } = (await res.json()) as { campaign: CampaignWire };
    expect(campaign.counts).toEqual(truth);
    // four state changes per device (queued, dispatched, running, end); progress alone moves no count
    expect(campaign.version).toBe(DEVICES * 4);
    const client = new pg.Client({ connectionString: dbUrl });
    await client.connect();
    const recount = await client.query<{ state: string | null; n: number }>(
      "SELECT state, count(*)::int AS n FROM campaign_devices WHERE campaign_id = 'fleet' GROUP BY state",
    );
    await client.end();
    expect(Object.fromEntries(recount.rows.map((r) => [r.state ?? 'pending', r.n]))).toEqual({
      succeeded: truth.succeeded,
      failed: truth.failed,
    });

    // Progress: the last broadcast is the truth; each one's counts add up to the device count and grow
    // with `version`; at most one per second. They are timed where this process receives them, while it
    // is busy sending the reports, so one handled late makes the next gap look shorter: the rate is checked
    // over the whole run, and each gap with half an interval of slack.
    await vi.waitFor(() => expect(progress.at(-1)?.campaign.version).toBe(campaign.version), {
      timeout: 5000,
    });
    expect(progress.at(-1)!.campaign.counts).toEqual(truth);
    expect(progress.length).toBeGreaterThan(1);
    expect(progress.length).toBeLessThanOrEqual(
      Math.floor((progress.at(-1)!.at - progress[0]!.at) / 1000) + 1,
    );
    for (const [i, p] of progress.entries()) {
      expect(Object.values(p.campaign.counts).reduce((a, b) => a + b, 0)).toBe(DEVICES);
      if (i > 0) {
        expect(p.campaign.version).toBeGreaterThan(progress[i - 1]!.campaign.version);
        expect(p.at - progress[i - 1]!.at).toBeGreaterThanOrEqual(500);
      }
    }

    // The failure rate (a third, past 25 %) raised the campaign alarm once; the NOC got it on its socket.
    const identifier = campaignFailingAlarmIdentifier('fleet');
    await vi.waitFor(() =>
      expect(
        noc.received.filter((e) => e.data.alarm?.alarm_identifier === identifier).map((e) => e.event),
      ).toEqual(['App\\Events\\AlarmCreated']),
    );
    const aborted = await call(1, 'PATCH', '/v1/campaigns/fleet', { state: 'aborted' });
    expect(aborted.status).toBe(200);
    await vi.waitFor(() =>
      expect(
        noc.received.filter((e) => e.data.alarm?.alarm_identifier === identifier).map((e) => e.event),
      ).toEqual(['App\\Events\\AlarmCreated', 'App\\Events\\AlarmCleared']),
    );
    await vi.waitFor(() => expect(progress.at(-1)!.campaign.state).toBe('aborted'), { timeout: 5000 });
    noc.pusher.disconnect();
    // A new subscriber of the campaign channel starts with its last progress.
    const view = await stateSocket(edge, world.users.noc!.id, 'private-campaign.fleet');
    await vi.waitFor(() => expect(view.received[0]?.data.snapshot).toBe(true));
    expect(view.received[0]).toMatchObject({
      event: 'App\\Events\\FirmwareCampaignProgress',
      data: { campaign: { id: 'fleet', state: 'aborted', counts: truth } },
    });
    view.pusher.disconnect();
  });
});
