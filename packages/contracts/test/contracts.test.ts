import { describe, expect, it } from 'vitest';
import {
  AlarmIngestBody,
  AlarmListQuery,
  IdempotencyKey,
  JOB_CATALOGUE,
  BROADCAST_EVENTS_MAX,
  broadcastJob,
  broadcastJobs,
  broadcastEventsJobId,
  parseJob,
  OUTBOX_KINDS,
  PubSubEnvelope,
  parseChannel,
  toAlarmWire,
  AlarmWire,
} from '../src/index.js';

const alarm = {
  deviceId: 7,
  alarmIdentifier: 'x',
  eventType: 'e',
  probableCause: 'p',
  specificProblem: '',
  perceivedSeverity: 'Minor',
};

describe('AlarmIngestBody', () => {
  it('accepts a minimal device alarm and coerces numeric-string ids', () => {
    expect(AlarmIngestBody.parse(alarm).deviceId).toBe(7);
    expect(AlarmIngestBody.parse({ ...alarm, deviceId: '7' }).deviceId).toBe(7);
  });
  it.each([
    ['zero id', { ...alarm, deviceId: 0 }],
    ['fractional id', { ...alarm, deviceId: 1.5 }],
    ['id past int4', { ...alarm, deviceId: 2_147_483_648 }],
    ['string id with junk', { ...alarm, deviceId: '7; drop' }],
    ['lower-case severity', { ...alarm, perceivedSeverity: 'minor' }],
    ['timestamp without offset', { ...alarm, raisedAt: '2026-11-25T10:00:00' }],
  ])('rejects %s', (_name, body) => {
    expect(AlarmIngestBody.safeParse(body).success).toBe(false);
  });
});

describe('parseChannel', () => {
  it('knows user and tenant channels and nothing else', () => {
    expect(parseChannel('private-user.12')).toEqual({ kind: 'user', userId: 12 });
    expect(parseChannel('private-tenant.3')).toEqual({ kind: 'tenant', tenantId: 3 });
    for (const name of [
      'private-user.012',
      'private-user.1.2',
      'user.1',
      'presence-user.1',
      'private-user.',
      'private-user.99999999999',
    ])
      expect(parseChannel(name), name).toBeNull();
  });
});

describe('PubSubEnvelope and the job catalogue', () => {
  it('rejects envelopes of an unknown version and jobs with a non-decimal event id', () => {
    const ok = { v: 1, node: 'n', type: 'event', channel: 'private-user.1', event: 'E', data: '{}' };
    expect(PubSubEnvelope.safeParse(ok).success).toBe(true);
    expect(PubSubEnvelope.safeParse({ ...ok, v: 2 }).success).toBe(false);
    expect(PubSubEnvelope.safeParse({ ...ok, data: {} }).success).toBe(false);
    const schema = JOB_CATALOGUE.BroadcastAlarmToTenant.schema;
    expect(schema.safeParse({ eventId: '12' }).success).toBe(true);
    expect(schema.safeParse({ eventId: 12 }).success).toBe(false);
    expect(schema.safeParse({ eventId: '12', extra: 1 }).success).toBe(false);
  });

  it('puts a single event in its own job and several in BroadcastEvents jobs of at most 100, ids ascending', () => {
    expect(broadcastJobs(['7'])).toEqual([broadcastJob('7')]);
    const ids = Array.from({ length: 201 }, (_, i) => String(1000 - i));
    const jobs = broadcastJobs(ids);
    expect(jobs.map((j) => j.name)).toEqual(['BroadcastEvents', 'BroadcastEvents', 'BroadcastAlarmToTenant']);
    const carried = jobs.flatMap((j) => ('eventIds' in j.data ? j.data.eventIds : [j.data.eventId]));
    expect(carried).toEqual([...ids].reverse());
    expect(jobs[0]!.opts.jobId).toBe(broadcastEventsJobId(carried.slice(0, BROADCAST_EVENTS_MAX)));
    expect(jobs[0]!.opts.jobId).toBe('evts-800-899-100');
    // The same set in another order is the same job (enqueueing it again is a no-op).
    expect(broadcastJobs([...ids].sort()).map((j) => j.opts.jobId)).toEqual(jobs.map((j) => j.opts.jobId));
    for (const job of jobs) expect(parseJob(job.name, job.data)).toMatchObject({ ok: true });
    const many = JOB_CATALOGUE.BroadcastEvents.schema;
    expect(many.safeParse({ eventIds: ['1'] }).success).toBe(false);
    expect(many.safeParse({ eventIds: Array.from({ length: 101 }, (_, i) => String(i + 1)) }).success).toBe(
      false,
    );
    expect(many.safeParse({ eventIds: ['1', 'x'] }).success).toBe(false);
  });
});

describe('toAlarmWire', () => {
  it('renders snake_case with ISO times and the bigint id as a string', () => {
    const t = new Date('2026-11-25T10:00:00Z');
    const wire = toAlarmWire({
      id: 9007199254740993n,
      tenantId: 1,
      deviceId: null,
      alarmIdentifier: 'a',
      eventType: 'e',
      probableCause: 'p',
      specificProblem: 's',
      perceivedSeverity: 'Critical',
      managedObjectInstance: null,
      additionalText: null,
      additionalInformation: null,
      raisedAt: t,
      changedAt: t,
      clearedAt: null,
      acknowledgedAt: null,
      device: null,
    });
    expect(wire).toMatchObject({
      id: '9007199254740993',
      tenant_id: 1,
      device_id: null,
      device_name: null,
      device_serial_number: null,
      raised_at: '2026-11-25T10:00:00.000Z',
    });
  });

  it("carries the device's name and serial number from the joined device", () => {
    const t = new Date('2026-11-25T10:00:00Z');
    const wire = toAlarmWire({
      id: 1n,
      tenantId: 1,
      deviceId: 7,
      alarmIdentifier: 'a',
      eventType: 'e',
      probableCause: 'p',
      specificProblem: 's',
      perceivedSeverity: 'Major',
      managedObjectInstance: null,
      additionalText: null,
      additionalInformation: null,
      raisedAt: t,
      changedAt: t,
      clearedAt: null,
      acknowledgedAt: null,
      device: { name: 'Lobby router', serialNumber: 'ACME0001' },
    });
    expect(wire).toMatchObject({
      device_id: 7,
      device_name: 'Lobby router',
      device_serial_number: 'ACME0001',
    });
    expect(AlarmWire.safeParse(wire).success).toBe(true);
  });
});

describe('alarm lifecycle contracts', () => {
  it('maps every outbox kind to its Laravel event name', () => {
    expect(OUTBOX_KINDS).toEqual({
      'alarm.created': 'App\\Events\\AlarmCreated',
      'alarm.updated': 'App\\Events\\AlarmUpdated',
      'alarm.cleared': 'App\\Events\\AlarmCleared',
      'alarm.acknowledged': 'App\\Events\\AlarmAcknowledged',
      'task.updated': 'App\\Events\\DeviceTaskUpdated',
    });
  });

  it('accepts 1-255 printable ASCII characters as an Idempotency-Key', () => {
    expect(IdempotencyKey.safeParse('a').success).toBe(true);
    expect(IdempotencyKey.safeParse(' ~'.repeat(127) + 'x').success).toBe(true);
    for (const bad of ['', 'k'.repeat(256), 'clé', 'tab\there', 'nl\n']) {
      expect(IdempotencyKey.safeParse(bad).success, JSON.stringify(bad)).toBe(false);
    }
  });

  it('parses the alarm list query with its defaults and limits', () => {
    expect(AlarmListQuery.parse({})).toEqual({ state: 'all', limit: 100 });
    expect(
      AlarmListQuery.parse({ state: 'active', severity: 'Critical, Major', deviceId: '7', limit: '500' }),
    ).toEqual({
      state: 'active',
      severity: ['Critical', 'Major'],
      deviceId: 7,
      limit: 500,
    });
    for (const bad of [
      { limit: '0' },
      { limit: '501' },
      { severity: '' },
      { deviceId: '0' },
      { other: '1' },
    ]) {
      expect(AlarmListQuery.safeParse(bad).success, JSON.stringify(bad)).toBe(false);
    }
  });
});
