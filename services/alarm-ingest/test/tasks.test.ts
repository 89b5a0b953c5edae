import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { generateCollectorToken, hashCollectorToken, signUserJwt } from '@alarmcast/auth';
import {
  type CollectorScope,
  TASK_STATES,
  DOWNLOAD_PHASES,
  initialTaskState,
  transitionTask,
  type ProvisionResult,
  type TaskMachineState,
  type TaskWire,
} from '@alarmcast/contracts';
import { createPrismaClient, provisionGraph, type PrismaClient } from '@alarmcast/db';
import { RedisKeys, createRedis, decodeEnvelope, type Redis } from '@alarmcast/redis';
import { createTestDatabase, testEnv, uniqueRedisPrefix } from '@alarmcast/testing';
import { parseIngestConfig } from '../src/config.js';
import { startIngest, type IngestServer } from '../src/server.js';

/** what the platform's token needs for these routes */
const SCOPES: CollectorScope[] = ['tasks', 'campaigns', 'informs'];
const JWT_SECRET = 'tasks-test-jwt-secret-0123456789abcdef';
const user = (ref: string) => ({ ref, email: `${ref}@example.test`, name: ref });
const device = (ref: string) => ({ ref, oui: '00D09E', productClass: 'HG8245', serialNumber: ref });
const graph = {
  tenants: [
    {
      ref: 'A',
      name: 'Tenant A',
      slug: 'tenant-a',
      users: [user('a1')],
      devices: [device('da'), device('da2')],
      collectorTokens: [
        { ref: 'ta', name: 'collector of A', scopes: SCOPES },
        { ref: 'alarms-only', name: 'an alarm collector of A' },
      ],
    },
    {
      ref: 'B',
      name: 'Tenant B',
      slug: 'tenant-b',
      users: [user('b1'), user('b2')],
      devices: [device('db')],
      collectorTokens: [{ ref: 'tb', name: 'collector of B', scopes: SCOPES }],
    },
  ],
  platformUsers: [],
  collectorTokens: [{ ref: 'platform', name: 'platform collector', scopes: SCOPES }],
  // b1 (tenant B) sees da through a share
  shares: [{ user: 'b1', device: 'da' }],
};

interface TaskAnswer {
  task: TaskWire;
  outcome: string;
}
interface ErrorAnswer {
  error: { code: string; message: string; details?: unknown };
}

describe('PUT /v1/tasks/{taskId} and GET /v1/devices/{id}/tasks', () => {
  let prisma: PrismaClient;
  let world: ProvisionResult;
  let ingest: IngestServer;
  let sub: Redis;
  let keys: RedisKeys;
  let dropDb: () => Promise<void>;
  /** frames published on Redis pub/sub, by Pusher channel */
  const published: { channel: string; event: string; data: unknown }[] = [];
  let n = 0;
  const tid = (name: string) => `${name}-${++n}`;

  beforeAll(async () => {
    const db = await createTestDatabase(testEnv().postgresAdminUrl, testEnv().postgresTemplate);
    dropDb = db.drop;
    prisma = createPrismaClient(db.url);
    world = await provisionGraph(prisma, graph, {
      hashToken: hashCollectorToken,
      newToken: generateCollectorToken,
    });
    const prefix = uniqueRedisPrefix();
    keys = new RedisKeys(prefix);
    sub = createRedis(testEnv().redisUrl, { name: 'tasks-test-sub' });
    await sub.psubscribe(`${prefix}:ch:*`);
    sub.on('pmessage', (_p, ch, message) => {
      const env = decodeEnvelope(message);
      if (env?.type === 'event')
        published.push({ channel: keys.pusherChannelOf(ch)!, event: env.event, data: JSON.parse(env.data) });
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
        DB_POOL_MAX: '10',
        RATE_LIMIT_USER_API_PER_USER: '0',
        RATE_LIMIT_USER_API_PER_IP: '0',
        RATE_LIMIT_ALARMS_PER_TOKEN: '0',
        RATE_LIMIT_ALARMS_PER_IP: '0',
        CAMPAIGN_TASK_CONFLATE_MS: '0',
      }),
    );
  });
  afterAll(async () => {
    await ingest.close();
    sub.disconnect();
    await prisma.$disconnect();
    await dropDb();
  });

  const token = (ref: 'ta' | 'tb' | 'platform') => world.collectorTokens[ref]!.token;
  const dev = (ref: string) => world.devices[ref]!.id;
  const put = (taskId: string, body: unknown, tok = token('ta')) =>
    fetch(`${ingest.url}/v1/tasks/${encodeURIComponent(taskId)}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${tok}` },
      body: JSON.stringify(body),
    });
  const asUser = async (ref: string, path: string) =>
    fetch(`${ingest.url}${path}`, {
      headers: { authorization: `Bearer ${await signUserJwt(JWT_SECRET, world.users[ref]!.id)}` },
    });
  const taskEvents = (taskId: string) =>
    prisma.outboxEvent
      .findMany({ where: { kind: 'task.updated' }, orderBy: { id: 'asc' } })
      .then((rows) => rows.filter((r) => (r.payload as unknown as { task: TaskWire }).task.id === taskId));

  it('creates (201), updates (200), answers a replay with 200 and changes and sends nothing', async () => {
    const id = tid('reboot');
    const body = { deviceId: dev('da'), kind: 'reboot', requestedByUserId: world.users.a1!.id };
    const r1 = await put(id, { ...body, state: 'queued' });
    expect(r1.status).toBe(201);
    const a1 = (await r1.json()) as TaskAnswer;
    expect(a1).toMatchObject({
      outcome: 'created',
      task: { id, state: 'queued', progress: 0, kind: 'reboot' },
    });
    const r2 = await put(id, { ...body, state: 'dispatched' });
    expect(r2.status).toBe(200);
    expect(((await r2.json()) as TaskAnswer).outcome).toBe('updated');
    const stateOf = (p: { data: unknown }) => (p.data as { task?: TaskWire }).task?.state;
    await vi.waitFor(() => expect(published.some((p) => stateOf(p) === 'dispatched')).toBe(true));
    published.length = 0;
    const before = await taskEvents(id);
    const r3 = await put(id, { ...body, state: 'dispatched' });
    expect(r3.status).toBe(200);
    const a3 = (await r3.json()) as TaskAnswer;
    expect(a3.outcome).toBe('replay');
    expect(a3.task.state).toBe('dispatched');
    // the requester's outbox copy exists for the two changes and not for the replay
    expect(before).toHaveLength(2);
    expect(await taskEvents(id)).toHaveLength(2);
    expect(before.every((e) => e.recipientUserId === world.users.a1!.id)).toBe(true);
    // a live change goes out on the device channel; the replay sent nothing
    await put(id, { ...body, state: 'succeeded' });
    await vi.waitFor(() => expect(published.some((p) => stateOf(p) === 'succeeded')).toBe(true));
    expect(published.map((p) => [p.channel, p.event, (p.data as { task: TaskWire }).task.state])).toEqual([
      [`private-device.${dev('da')}`, 'App\\Events\\DeviceTaskUpdated', 'succeeded'],
    ]);
  });

  it('refuses an illegal transition with 409 naming both states, and an out-of-order report', async () => {
    const id = tid('set');
    const body = { deviceId: dev('da'), kind: 'setParameterValues' };
    expect((await put(id, { ...body, state: 'running', progress: 50 })).status).toBe(201);
    const back = await put(id, { ...body, state: 'queued' });
    expect(back.status).toBe(409);
    const e1 = (await back.json()) as ErrorAnswer;
    expect(e1.error.code).toBe('illegal_task_transition');
    expect(e1.error.message).toContain('running');
    expect(e1.error.message).toContain('queued');
    expect(e1.error.details).toMatchObject({ from: 'running', to: 'queued' });
    const lower = await put(id, { ...body, state: 'running', progress: 40 });
    expect(lower.status).toBe(409);
    expect(((await lower.json()) as ErrorAnswer).error).toMatchObject({
      code: 'task_progress_regressed',
      details: { from: 50, to: 40 },
    });
    expect(
      (await put(id, { ...body, state: 'failed', faultCode: 9002, faultString: 'Internal error' })).status,
    ).toBe(200);
    // a running arriving after the terminal state: refused, the stored task stays failed
    const late = await put(id, { ...body, state: 'running', progress: 90 });
    expect(late.status).toBe(409);
    expect(((await late.json()) as ErrorAnswer).error).toMatchObject({
      code: 'illegal_task_transition',
      details: { from: 'failed', to: 'running' },
    });
    const stored = await prisma.deviceTask.findFirstOrThrow({ where: { id } });
    expect([stored.state, stored.progress, stored.faultCode]).toEqual(['failed', 50, 9002]);
  });

  it('models a TR-069 download: phases map to progress, a TransferComplete fault fails it', async () => {
    const id = tid('fw');
    const body = { deviceId: dev('da'), kind: 'download', targetSoftwareVersion: '2.0.1' };
    const seen: [string, number, string | null][] = [];
    for (const step of [
      { state: 'dispatched' },
      { state: 'running', phase: 'downloading' },
      { state: 'running', phase: 'downloading', progress: 42 },
      { state: 'running', phase: 'applying' },
      { state: 'running', phase: 'rebooting' },
    ]) {
      const r = await put(id, { ...body, ...step });
      const { task } = (await r.json()) as TaskAnswer;
      seen.push([task.state, task.progress, task.phase]);
    }
    expect(seen).toEqual([
      ['dispatched', 0, null],
      ['running', 10, 'downloading'],
      ['running', 42, 'downloading'],
      ['running', 70, 'applying'],
      ['running', 80, 'rebooting'],
    ]);
    const fault = await put(id, {
      ...body,
      state: 'running',
      faultCode: 9017,
      faultString: 'File corrupted',
    });
    expect(fault.status).toBe(200);
    expect(((await fault.json()) as TaskAnswer).task).toMatchObject({
      state: 'failed',
      fault_code: 9017,
      fault_string: 'File corrupted',
      progress: 80,
    });
  });

  it('needs the tasks scope (403 insufficient_scope) and a token (401)', async () => {
    const body = { deviceId: dev('da'), kind: 'reboot', state: 'queued' };
    const r = await put(tid('scope'), body, world.collectorTokens['alarms-only']!.token);
    expect(r.status).toBe(403);
    expect(((await r.json()) as ErrorAnswer).error).toMatchObject({
      code: 'insufficient_scope',
      details: { scope: 'tasks' },
    });
    expect((await put(tid('scope'), body, 'not-a-real-token-at-all')).status).toBe(401);
  });

  it('confirms a download by the next inform reporting its target softwareVersion', async () => {
    const id = tid('fw-inform');
    const body = {
      deviceId: dev('da2'),
      kind: 'download',
      targetSoftwareVersion: '9.9.9',
      requestedByUserId: world.users.a1!.id,
    };
    await put(id, { ...body, state: 'running', phase: 'verifying' });
    const inform = (softwareVersion: string, at: string) =>
      fetch(`${ingest.url}/v1/devices/informs`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token('ta')}` },
        body: JSON.stringify({
          informs: [
            {
              deviceId: dev('da2'),
              informedAt: at,
              eventCodes: ['1 BOOT', 'M Download'],
              periodicInformInterval: 300,
              softwareVersion,
            },
          ],
        }),
      });
    // another version: not this download's target
    expect((await inform('9.9.8', '2026-12-02T05:00:00Z')).status).toBe(200);
    await new Promise((r) => setTimeout(r, 300));
    expect((await prisma.deviceTask.findFirstOrThrow({ where: { id } })).state).toBe('running');
    expect((await inform('9.9.9', '2026-12-02T05:01:00Z')).status).toBe(200);
    await vi.waitFor(async () => {
      const t = await prisma.deviceTask.findFirstOrThrow({ where: { id } });
      expect([t.state, t.progress, t.confirmedByInform]).toEqual(['succeeded', 100, true]);
    });
    // the requester's copy of the success is in the outbox like any change
    expect(
      (await taskEvents(id)).map((e) => (e.payload as unknown as { task: TaskWire }).task.state),
    ).toEqual(['running', 'succeeded']);
  });

  it('validates bodies and paths, naming the field', async () => {
    const cases: [string, unknown, string][] = [
      [tid('v'), { deviceId: dev('da'), kind: 'reboot', state: 'done' }, 'state'],
      [tid('v'), { deviceId: dev('da'), kind: 'nuke', state: 'queued' }, 'kind'],
      [tid('v'), { deviceId: dev('da'), kind: 'reboot', state: 'running', progress: 101 }, 'progress'],
      [
        tid('v'),
        { deviceId: dev('da'), kind: 'reboot', state: 'failed', faultString: 'x'.repeat(257) },
        'faultString',
      ],
      [
        tid('v'),
        { deviceId: dev('da'), kind: 'reboot', state: 'queued', detail: 'x'.repeat(1025) },
        'detail',
      ],
      [tid('v'), { deviceId: dev('da'), kind: 'reboot', state: 'running', phase: 'applying' }, 'phase'],
      [tid('v'), { deviceId: dev('da'), kind: 'reboot', state: 'running', faultCode: 9001 }, 'faultCode'],
      [tid('v'), { deviceId: dev('da'), kind: 'reboot', state: 'queued', extra: 1 }, '(body)'],
      ['bad id!', { deviceId: dev('da'), kind: 'reboot', state: 'queued' }, 'taskId'],
      ['x'.repeat(129), { deviceId: dev('da'), kind: 'reboot', state: 'queued' }, 'taskId'],
    ];
    for (const [id, body, field] of cases) {
      const r = await put(id, body);
      expect(r.status, JSON.stringify(body)).toBe(422);
      const e = (await r.json()) as ErrorAnswer & { error: { details: { field: string }[] } };
      expect(e.error.code).toBe('validation_failed');
      expect(e.error.details.map((d) => d.field)).toContain(field);
    }
  });

  it('refuses another tenant’s device (422 unknown_device, as for a missing one) and a changed identity (409)', async () => {
    const other = await put(tid('x'), { deviceId: dev('db'), kind: 'reboot', state: 'queued' });
    expect(other.status).toBe(422);
    expect(((await other.json()) as ErrorAnswer).error.code).toBe('unknown_device');
    const missing = await put(tid('x'), { deviceId: 999_999, kind: 'reboot', state: 'queued' });
    expect(((await missing.json()) as ErrorAnswer).error.code).toBe('unknown_device');
    const id = tid('same');
    expect((await put(id, { deviceId: dev('da'), kind: 'reboot', state: 'queued' })).status).toBe(201);
    const moved = await put(id, { deviceId: dev('da2'), kind: 'reboot', state: 'dispatched' });
    expect(moved.status).toBe(409);
    expect(((await moved.json()) as ErrorAnswer).error).toMatchObject({ code: 'task_conflict' });
    // the same id in another tenant is another task
    expect(
      (await put(id, { deviceId: dev('db'), kind: 'upload', state: 'queued' }, token('tb'))).status,
    ).toBe(201);
    expect(
      (await put(id, { deviceId: dev('db'), kind: 'upload', state: 'queued' }, token('platform'))).status,
    ).toBe(200);
  });

  it('stores what the state machine says, whatever order the reports arrive in (property)', async () => {
    const report = fc
      .record({
        state: fc.constantFrom(...TASK_STATES),
        progress: fc.option(fc.integer({ min: 0, max: 100 }), { nil: undefined }),
        phase: fc.option(fc.constantFrom(...DOWNLOAD_PHASES), { nil: undefined }),
      })
      .map((r) => ({ ...r, phase: r.state === 'running' ? r.phase : undefined }));
    await fc.assert(
      fc.asyncProperty(fc.array(report, { minLength: 1, maxLength: 8 }), async (reports) => {
        const id = tid('prop');
        let model: TaskMachineState | null = null;
        for (const r of reports) {
          const res = await put(id, { deviceId: dev('da2'), kind: 'download', ...r });
          let expected: number;
          if (model === null) {
            model = initialTaskState(r);
            expected = 201;
          } else {
            const t = transitionTask(model, r);
            if (t.kind === 'applied') model = t.next;
            expected = t.kind === 'applied' || t.kind === 'replay' ? 200 : 409;
          }
          expect(res.status).toBe(expected);
        }
        const list = await asUser('a1', `/v1/devices/${dev('da2')}/tasks?state=all&limit=500`);
        const task = ((await list.json()) as { tasks: TaskWire[] }).tasks.find((t) => t.id === id)!;
        expect({ state: task.state, progress: task.progress, phase: task.phase }).toEqual(model);
      }),
      { numRuns: 25 },
    );
  });

  it('lists a device’s tasks to users who may see it, open ones by default', async () => {
    const open = tid('open');
    const done = tid('done');
    await put(open, { deviceId: dev('da'), kind: 'getParameterValues', state: 'running', progress: 10 });
    await put(done, { deviceId: dev('da'), kind: 'reboot', state: 'succeeded' });
    for (const viewer of ['a1', 'b1']) {
      const r = await asUser(viewer, `/v1/devices/${dev('da')}/tasks`);
      expect(r.status).toBe(200);
      const ids = ((await r.json()) as { tasks: TaskWire[] }).tasks.map((t) => t.id);
      expect(ids).toContain(open);
      expect(ids).not.toContain(done);
      const all = await asUser(viewer, `/v1/devices/${dev('da')}/tasks?state=all`);
      expect(((await all.json()) as { tasks: TaskWire[] }).tasks.map((t) => t.id)).toContain(done);
    }
    // b2 (tenant B, no share) may not see da: answered as a device that does not exist
    const hidden = await asUser('b2', `/v1/devices/${dev('da')}/tasks`);
    expect(hidden.status).toBe(404);
    expect(((await hidden.json()) as ErrorAnswer).error.code).toBe('not_found');
    expect((await asUser('b2', `/v1/devices/999999/tasks`)).status).toBe(404);
    const bad = await asUser('a1', `/v1/devices/${dev('da')}/tasks?limit=0`);
    expect(bad.status).toBe(422);
    const unauth = await fetch(`${ingest.url}/v1/devices/${dev('da')}/tasks`);
    expect(unauth.status).toBe(401);
  });
});
