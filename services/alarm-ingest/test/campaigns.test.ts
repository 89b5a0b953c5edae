import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { generateCollectorToken, hashCollectorToken, signUserJwt } from '@alarmcast/auth';
import {
  type CollectorScope,
  campaignFailingAlarmIdentifier,
  type CampaignListResponse,
  type CampaignResponse,
  type CampaignWire,
  type ProvisionResult,
} from '@alarmcast/contracts';
import { createPrismaClient, provisionGraph, type PrismaClient } from '@alarmcast/db';
import { RedisKeys, createRedis, decodeEnvelope, type Redis } from '@alarmcast/redis';
import { createTestDatabase, testEnv, uniqueRedisPrefix } from '@alarmcast/testing';
import { parseIngestConfig } from '../src/config.js';
import { startIngest, type IngestServer } from '../src/server.js';
import { statementsDuring } from './statements-during.js';

/** what the platform's token needs for these routes */
const SCOPES: CollectorScope[] = ['tasks', 'campaigns'];
const JWT_SECRET = 'campaigns-test-jwt-secret-0123456789abcdef';
const DEVICES = 30;
const device = (ref: string) => ({ ref, oui: '00D09E', productClass: 'HG8245', serialNumber: ref });
const graph = {
  tenants: [
    {
      ref: 'A',
      name: 'Tenant A',
      slug: 'tenant-a',
      users: [{ ref: 'a1', email: 'a1@example.test', name: 'a1' }],
      devices: Array.from({ length: DEVICES }, (_, i) => device(`da${i}`)),
      collectorTokens: [{ ref: 'ta', name: 'collector of A', scopes: SCOPES }],
    },
    {
      ref: 'B',
      name: 'Tenant B',
      slug: 'tenant-b',
      users: [{ ref: 'b1', email: 'b1@example.test', name: 'b1' }],
      devices: [device('db')],
      collectorTokens: [
        { ref: 'tb', name: 'collector of B', scopes: SCOPES },
        { ref: 'tasks-only', name: 'a task collector of B', scopes: ['tasks'] as CollectorScope[] },
      ],
    },
  ],
};

interface ErrorAnswer {
  error: { code: string; message: string; details?: { field: string; message: string }[] };
}

describe('firmware campaigns: API, exact counts, progress broadcasts, threshold alarm', () => {
  let prisma: PrismaClient;
  let world: ProvisionResult;
  let ingest: IngestServer;
  let sub: Redis;
  let dropDb: () => Promise<void>;
  const progress: { channel: string; at: number; campaign: CampaignWire }[] = [];

  beforeAll(async () => {
    const db = await createTestDatabase(testEnv().postgresAdminUrl, testEnv().postgresTemplate);
    dropDb = db.drop;
    prisma = createPrismaClient(db.url);
    world = await provisionGraph(prisma, graph, {
      hashToken: hashCollectorToken,
      newToken: generateCollectorToken,
    });
    const prefix = uniqueRedisPrefix();
    const keys = new RedisKeys(prefix);
    sub = createRedis(testEnv().redisUrl, { name: 'campaigns-test-sub' });
    await sub.psubscribe(`${prefix}:ch:*`);
    sub.on('pmessage', (_p, ch, message) => {
      const env = decodeEnvelope(message);
      if (env?.type === 'event' && env.event === 'App\\Events\\FirmwareCampaignProgress')
        progress.push({
          channel: keys.pusherChannelOf(ch)!,
          at: Date.now(),
          campaign: (JSON.parse(env.data) as { campaign: CampaignWire }).campaign,
        });
    });
    ingest = await startIngest(
      parseIngestConfig({
        INGEST_PORT: '0',
        INGEST_INTERNAL_PORT: '0',
        DATABASE_URL: db.url,
        REDIS_URL: testEnv().redisUrl,
        REDIS_PREFIX: prefix,
        LOG_LEVEL: 'silent',
        JWT_SECRET,
        RATE_LIMIT_USER_API_PER_USER: '0',
        RATE_LIMIT_ALARMS_PER_TOKEN: '0',
        CAMPAIGN_FAILURE_MIN_SAMPLE: '10',
        CAMPAIGN_PROGRESS_INTERVAL_MS: '300',
      }),
    );
  });
  afterAll(async () => {
    await ingest.close();
    sub.disconnect();
    await prisma.$disconnect();
    await dropDb();
  });

  const token = (ref: 'ta' | 'tb') => world.collectorTokens[ref]!.token;
  const devs = () => Array.from({ length: DEVICES }, (_, i) => world.devices[`da${i}`]!.id);
  const send = (method: string, path: string, body: unknown, tok = token('ta')) =>
    fetch(`${ingest.url}${path}`, {
      method,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${tok}` },
      body: JSON.stringify(body),
    });
  const getAs = async (ref: string, path: string) =>
    fetch(`${ingest.url}${path}`, {
      headers: { authorization: `Bearer ${await signUserJwt(JWT_SECRET, world.users[ref]!.id)}` },
    });
  const create = (campaignId: string, over: Record<string, unknown> = {}) =>
    send('POST', '/v1/campaigns', {
      campaignId,
      tenantId: world.tenants.A!.id,
      name: `rollout ${campaignId}`,
      targetVersion: '2.0.1',
      deviceIds: devs(),
      ...over,
    });
  const report = (campaignId: string, i: number, state: string, extra: Record<string, unknown> = {}) =>
    send('PUT', `/v1/tasks/${campaignId}-t${i}`, {
      deviceId: devs()[i],
      kind: 'download',
      campaignId,
      targetSoftwareVersion: '2.0.1',
      state,
      ...extra,
    });
  const campaignAlarm = (campaignId: string) =>
    prisma.alarm.findMany({ where: { alarmIdentifier: campaignFailingAlarmIdentifier(campaignId) } });

  it('creates a campaign (201, a retry 200), validates, and refuses what it must', async () => {
    const r = await create('c-api');
    expect(r.status).toBe(201);
    const { campaign } = (await r.json()) as { campaign: CampaignWire };
    expect(campaign).toMatchObject({
      id: 'c-api',
      tenant_id: world.tenants.A!.id,
      state: 'running',
      device_count: DEVICES,
      counts: { pending: DEVICES, queued: 0, running: 0, succeeded: 0, failed: 0 },
      version: 0,
      failing: false,
    });
    expect((await create('c-api')).status).toBe(200);
    const other = await create('c-api', { name: 'another' });
    expect(other.status).toBe(409);
    expect(((await other.json()) as ErrorAnswer).error.code).toBe('campaign_exists');
    // another tenant's device: refused whole, nothing created
    const foreign = await create('c-foreign', { deviceIds: [...devs(), world.devices.db!.id] });
    expect(foreign.status).toBe(422);
    const fe = (await foreign.json()) as ErrorAnswer;
    expect(fe.error.code).toBe('unknown_device');
    expect(fe.error.details![0]!.message).toContain(String(world.devices.db!.id));
    expect(await prisma.firmwareCampaign.count({ where: { id: 'c-foreign' } })).toBe(0);
    const dup = await create('c-dup', { deviceIds: [devs()[0], devs()[0]] });
    expect(((await dup.json()) as ErrorAnswer).error.details![0]!.field).toBe('deviceIds.1');
    const tooMany = await create('c-big', { deviceIds: Array.from({ length: 100_001 }, (_, i) => i + 1) });
    expect(tooMany.status).toBe(422);
    expect(((await tooMany.json()) as ErrorAnswer).error.details![0]!.field).toBe('deviceIds');
    const noScope = await send('POST', '/v1/campaigns', {}, world.collectorTokens['tasks-only']!.token);
    expect(noScope.status).toBe(403);
    expect(((await noScope.json()) as ErrorAnswer).error.code).toBe('insufficient_scope');
    const badId = await create('bad id', {});
    expect(((await badId.json()) as ErrorAnswer).error.details![0]!.field).toBe('campaignId');
    const scoped = await create('c-b', {});
    expect(scoped.status).toBe(201);
    const wrongTenant = await send(
      'POST',
      '/v1/campaigns',
      {
        campaignId: 'c-x',
        tenantId: world.tenants.A!.id,
        name: 'x',
        targetVersion: '1',
        deviceIds: devs(),
      },
      token('tb'),
    );
    expect(wrongTenant.status).toBe(403);
    // a task naming a campaign its device is not in
    const outsider = await send(
      'PUT',
      '/v1/tasks/outsider',
      {
        deviceId: world.devices.db!.id,
        kind: 'download',
        campaignId: 'c-api',
        state: 'queued',
      },
      token('tb'),
    );
    expect(outsider.status).toBe(422);
    expect(((await outsider.json()) as ErrorAnswer).error.code).toBe('unknown_campaign');
  });

  it('shows a campaign to its tenant’s users only', async () => {
    const mine = await getAs('a1', '/v1/campaigns/c-api');
    expect(mine.status).toBe(200);
    const body = (await mine.json()) as CampaignResponse;
    expect(body.campaign.id).toBe('c-api');
    expect(body.failing_devices).toEqual([]);
    expect((await getAs('b1', '/v1/campaigns/c-api')).status).toBe(404);
    expect((await getAs('a1', '/v1/campaigns/nope')).status).toBe(404);
  });

  it('lists the tenant’s campaigns newest first, by state, page by page, and no other tenant’s', async () => {
    for (const id of ['lb-1', 'lb-2', 'lb-3']) {
      const res = await send(
        'POST',
        '/v1/campaigns',
        {
          campaignId: id,
          tenantId: world.tenants.B!.id,
          name: id,
          targetVersion: '3.0',
          deviceIds: [world.devices.db!.id],
        },
        token('tb'),
      );
      expect(res.status).toBe(201);
    }
    expect((await send('PATCH', '/v1/campaigns/lb-2', { state: 'completed' }, token('tb'))).status).toBe(200);
    const list = async (ref: string, query = '') => {
      const res = await getAs(ref, `/v1/campaigns${query}`);
      expect(res.status).toBe(200);
      const body = (await res.json()) as CampaignListResponse;
      return { ids: body.campaigns.map((c) => c.id), next: body.next_cursor, campaigns: body.campaigns };
    };
    const all = await list('b1');
    expect(all.ids).toEqual(['lb-3', 'lb-2', 'lb-1']);
    expect(all.next).toBeNull();
    expect(all.campaigns[0]!.device_count).toBe(1);
    expect((await list('b1', '?state=open')).ids).toEqual(['lb-3', 'lb-1']);
    expect((await list('b1', '?state=completed')).ids).toEqual(['lb-2']);
    const first = await list('b1', '?limit=2');
    expect(first).toMatchObject({ ids: ['lb-3', 'lb-2'], next: 'lb-2' });
    expect(await list('b1', `?limit=2&cursor=${first.next}`)).toMatchObject({ ids: ['lb-1'], next: null });
    expect((await list('a1')).ids).not.toContain('lb-1');
    // Another tenant's campaign as a cursor gives an empty page, not that tenant's order.
    expect((await list('a1', '?cursor=lb-2')).ids).toEqual([]);
    const bad = await getAs('b1', '/v1/campaigns?state=done&limit=0');
    expect(bad.status).toBe(422);
    const error = ((await bad.json()) as ErrorAnswer).error;
    expect(error.code).toBe('validation_failed');
    expect(error.details?.map((d) => d.field).sort()).toEqual(['limit', 'state']);
  });

  it('keeps the counts exact and broadcasts progress at most once per interval, ending with the final counts', async () => {
    expect((await create('c-flow')).status).toBe(201);
    progress.length = 0;
    // every device: queued, dispatched, running, then succeeded (even) or failed (odd) on a TransferComplete fault
    await Promise.all(
      devs().map(async (_, i) => {
        for (const state of ['queued', 'dispatched', 'running'])
          expect((await report('c-flow', i, state)).status).toBeLessThan(300);
        const end =
          i % 2 === 0
            ? report('c-flow', i, 'succeeded')
            : report('c-flow', i, 'running', { faultCode: 9010 });
        expect((await end).status).toBe(200);
      }),
    );
    const final = ((await (await getAs('a1', '/v1/campaigns/c-flow')).json()) as CampaignResponse).campaign;
    expect(final.counts).toEqual({
      pending: 0,
      queued: 0,
      dispatched: 0,
      running: 0,
      succeeded: DEVICES / 2,
      failed: DEVICES / 2,
      cancelled: 0,
      expired: 0,
    });
    expect(final.version).toBe(DEVICES * 4);
    await vi.waitFor(
      () =>
        expect(progress.filter((p) => p.channel === 'private-campaign.c-flow').at(-1)?.campaign.version).toBe(
          final.version,
        ),
      { timeout: 5000 },
    );
    const onCampaign = progress.filter((p) => p.channel === 'private-campaign.c-flow');
    const onTenant = progress.filter(
      (p) => p.channel === `private-tenant.${world.tenants.A!.id}` && p.campaign.id === 'c-flow',
    );
    expect(onTenant.map((p) => p.campaign.version)).toEqual(onCampaign.map((p) => p.campaign.version));
    // 300 ms apart: timed where they are received, in this busy process (it runs the ingest too), so one
    // frame handled late makes the next gap look shorter; over the whole run, no more than one per interval.
    const span = onCampaign.at(-1)!.at - onCampaign[0]!.at;
    expect(onCampaign.length).toBeGreaterThan(1);
    expect(onCampaign.length).toBeLessThanOrEqual(Math.floor(span / 300) + 1);
    for (let i = 1; i < onCampaign.length; i++) {
      expect(onCampaign[i]!.at - onCampaign[i - 1]!.at).toBeGreaterThanOrEqual(150);
      expect(onCampaign[i]!.campaign.version).toBeGreaterThan(onCampaign[i - 1]!.campaign.version);
    }
    for (const p of onCampaign) {
      const sum = Object.values(p.campaign.counts).reduce((a, b) => a + b, 0);
      expect(sum).toBe(DEVICES);
    }
    expect(onCampaign.at(-1)!.campaign.counts).toEqual(final.counts);
    const listed = ((await (await getAs('a1', '/v1/campaigns/c-flow')).json()) as CampaignResponse)
      .failing_devices;
    expect(listed).toHaveLength(DEVICES / 2);
    expect(listed.every((f) => f.fault_code === 9010)).toBe(true);
  });

  it('applies a report in a few statements: the task read and locked in one, the campaign moved in one', async () => {
    expect((await create('c-trips')).status).toBe(201);
    expect((await report('c-trips', 0, 'queued')).status).toBe(201);
    // Only the tasks' and campaigns' statements are kept: the outbox, presence and progress work runs beside.
    const statementsOf = async (send: () => Promise<Response>): Promise<string[]> => {
      const { result, statements } = await statementsDuring(send);
      expect(result.status).toBe(200);
      return statements.filter((s) => /^(task|campaign)_/.test(s));
    };
    // A state change moves the campaign's device: its lock, takeover check, count move and counts at once.
    expect(await statementsOf(() => report('c-trips', 0, 'running', { progress: 10 }))).toEqual([
      'task_load',
      'task_update',
      'campaign_move_device',
    ]);
    // Progress within a state moves no count.
    expect(await statementsOf(() => report('c-trips', 0, 'running', { progress: 50 }))).toEqual([
      'task_load',
      'task_update',
    ]);
    const c = ((await (await getAs('a1', '/v1/campaigns/c-trips')).json()) as CampaignResponse).campaign;
    expect(c.counts).toMatchObject({ pending: DEVICES - 1, queued: 0, running: 1 });
    expect(c.version).toBe(2);
  });

  it('a retried device follows its new task; the old one no longer moves it', async () => {
    expect((await create('c-retry')).status).toBe(201);
    expect((await report('c-retry', 0, 'failed', { faultCode: 9010 })).status).toBe(201);
    const retry = await send('PUT', '/v1/tasks/c-retry-t0-again', {
      deviceId: devs()[0],
      kind: 'download',
      campaignId: 'c-retry',
      state: 'running',
    });
    expect(retry.status).toBe(201);
    const c = ((await (await getAs('a1', '/v1/campaigns/c-retry')).json()) as CampaignResponse).campaign;
    expect(c.counts).toMatchObject({ pending: DEVICES - 1, failed: 0, running: 1 });
  });

  it('a retry racing its old task’s report leaves the device with the retry and the counts exact', async () => {
    expect((await create('c-race')).status).toBe(201);
    const racing = Array.from({ length: 12 }, (_, i) => i);
    for (const i of racing) expect((await report('c-race', i, 'queued')).status).toBe(201);
    // Both lock the device's campaign row: whichever goes second sees what the first did. Old first: the
    // device runs, then the retry takes it back to queued; retry first: the old task no longer moves it.
    await Promise.all(
      racing.flatMap((i) => [
        report('c-race', i, 'running'),
        send('PUT', `/v1/tasks/c-race-t${i}-again`, {
          deviceId: devs()[i],
          kind: 'download',
          campaignId: 'c-race',
          state: 'queued',
        }),
      ]),
    );
    const c = ((await (await getAs('a1', '/v1/campaigns/c-race')).json()) as CampaignResponse).campaign;
    expect(c.counts).toMatchObject({ pending: DEVICES - racing.length, queued: racing.length, running: 0 });
    const members = await prisma.$queryRaw<{ task_id: string; state: string }[]>`
      SELECT task_id, state FROM campaign_devices WHERE campaign_id = 'c-race' AND task_id IS NOT NULL`;
    expect(members.map((m) => m.task_id).sort()).toEqual(racing.map((i) => `c-race-t${i}-again`).sort());
    expect(new Set(members.map((m) => m.state))).toEqual(new Set(['queued']));
  });

  it('raises the threshold alarm past the threshold after the minimum sample, once, and clears it when aborted', async () => {
    expect((await create('c-alarm', { failureThresholdPercent: 50 })).status).toBe(201);
    // 5 failures: 100 %, but only 5 of the minimum 10 finished
    for (let i = 0; i < 5; i++) await report('c-alarm', i, 'failed', { faultCode: 9010 });
    expect(await campaignAlarm('c-alarm')).toHaveLength(0);
    for (let i = 5; i < 9; i++) await report('c-alarm', i, 'succeeded');
    expect(await campaignAlarm('c-alarm')).toHaveLength(0); // 5/9: sample not reached
    await report('c-alarm', 9, 'succeeded'); // 5/10 = 50 %: not past 50
    expect(await campaignAlarm('c-alarm')).toHaveLength(0);
    await report('c-alarm', 10, 'failed', { faultCode: 9011 }); // 6/11 > 50 %
    const raised = await campaignAlarm('c-alarm');
    expect(raised).toHaveLength(1);
    expect(raised[0]).toMatchObject({
      tenantId: world.tenants.A!.id,
      deviceId: null,
      perceivedSeverity: 'Major',
      clearedAt: null,
    });
    expect(raised[0]!.additionalText).toContain('c-alarm');
    expect(JSON.parse(raised[0]!.additionalInformation!)).toMatchObject({
      campaign_id: 'c-alarm',
      failed: 6,
      succeeded: 5,
    });
    // more failures do not raise it again (no AlarmUpdated per report)
    for (let i = 11; i < 14; i++) await report('c-alarm', i, 'failed', { faultCode: 9010 });
    const events = await prisma.outboxEvent.findMany({ where: { alarmId: raised[0]!.id } });
    expect(events.map((e) => e.kind)).toEqual(['alarm.created']);
    const c = ((await (await getAs('a1', '/v1/campaigns/c-alarm')).json()) as CampaignResponse).campaign;
    expect(c.failing).toBe(true);

    expect((await send('PATCH', '/v1/campaigns/c-alarm', { state: 'paused' })).status).toBe(200);
    expect((await campaignAlarm('c-alarm'))[0]!.clearedAt).toBeNull();
    const aborted = await send('PATCH', '/v1/campaigns/c-alarm', { state: 'aborted' });
    expect(aborted.status).toBe(200);
    expect(((await aborted.json()) as { campaign: CampaignWire }).campaign).toMatchObject({
      state: 'aborted',
      failing: false,
    });
    const cleared = await campaignAlarm('c-alarm');
    expect(cleared[0]!.perceivedSeverity).toBe('Cleared');
    expect(
      (await prisma.outboxEvent.findMany({ where: { alarmId: raised[0]!.id } })).map((e) => e.kind),
    ).toEqual(['alarm.created', 'alarm.cleared']);
    // final states are final
    const again = await send('PATCH', '/v1/campaigns/c-alarm', { state: 'running' });
    expect(again.status).toBe(409);
    const e = (await again.json()) as ErrorAnswer;
    expect(e.error.code).toBe('illegal_campaign_transition');
    expect(e.error.message).toContain('aborted');
    expect(e.error.message).toContain('running');
    expect((await send('PATCH', '/v1/campaigns/c-alarm', { state: 'aborted' })).status).toBe(200);
    expect((await send('PATCH', '/v1/campaigns/c-alarm', { state: 'nope' })).status).toBe(422);
    expect((await send('PATCH', '/v1/campaigns/c-alarm', { state: 'paused' }, token('tb'))).status).toBe(404);
  });
});
