import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { generateCollectorToken, hashCollectorToken } from '@alarmcast/auth';
import type { ProvisionResult } from '@alarmcast/contracts';
import { createPrismaClient, provisionGraph, type PrismaClient } from '@alarmcast/db';
import { createTestDatabase, testEnv, uniqueRedisPrefix } from '@alarmcast/testing';
import { APP, JWT_SECRET, connectUser, raiseAlarm, type UserClient } from '../src/stack.js';
import { freePort, spawnService, stopService, type SpawnedService } from '../src/spawned-stack.js';
import {
  ensurePrometheus,
  promtool,
  splitAlertExpr,
  startPrometheus,
  type PrometheusServer,
} from '../src/prometheus.js';

const INFRA = fileURLToPath(new URL('../../../infra/', import.meta.url));
const ALERTS = `${INFRA}prometheus/alerts.yml`;
const DASHBOARD = `${INFRA}grafana/dashboards/alarmcast.json`;

interface Panel {
  type: string;
  title: string;
  targets?: { expr: string }[];
}
const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: Panel[] };
const panelQueries = dashboard.panels.flatMap((p) =>
  (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })),
);
const alertRules = (
  parseYaml(readFileSync(ALERTS, 'utf8')) as {
    groups: { rules: { alert: string; expr: string; annotations: { runbook: string } }[] }[];
  }
).groups.flatMap((g) => g.rules);

/**
 * The monitoring kit against a real Prometheus (Debian's package): the three services run as separate
 * processes, as deployed, and Prometheus scrapes their internal ports every second while real clients drive
 * traffic (alarms to a pusher-js user, failed authentications on both services, a revocation). Then every
 * dashboard panel's query and every alert rule runs through Prometheus' HTTP API and must return series,
 * so no misspelt metric, label or label value can ship.
 */
describe('Prometheus: dashboard queries and alert rules against the running services', () => {
  let prometheus: PrometheusServer;
  let services: SpawnedService[] = [];
  let prisma: PrismaClient;
  let world: ProvisionResult;
  let dropDb: () => Promise<void>;
  let user: UserClient | undefined;
  let revokedUser: UserClient | undefined;
  const alarms = 6;
  const alarmIds: string[] = [];

  beforeAll(async () => {
    ensurePrometheus();
    const env = testEnv();
    const db = await createTestDatabase(env.postgresAdminUrl, env.postgresTemplate);
    dropDb = db.drop;
    prisma = createPrismaClient(db.url);
    world = await provisionGraph(
      prisma,
      {
        tenants: [
          {
            ref: 't',
            name: 'Tenant',
            slug: 'tenant',
            users: [
              { ref: 'alice', email: 'alice@example.test', name: 'Alice' },
              { ref: 'bob', email: 'bob@example.test', name: 'Bob' },
            ],
            devices: [{ ref: 'cpe', oui: '00D09E', productClass: 'HG8245', serialNumber: 'P1' }],
            collectorTokens: [{ ref: 'collector', name: 'collector' }],
          },
        ],
      },
      { hashToken: hashCollectorToken, newToken: generateCollectorToken },
    );
    const common = {
      NODE_ENV: 'development',
      DATABASE_URL: db.url,
      REDIS_URL: env.redisUrl,
      REDIS_PREFIX: uniqueRedisPrefix(),
      // info: the per-event lines that follow one alarm through the services (the last test reads them)
      LOG_LEVEL: 'info',
      PUSHER_APP_ID: APP.id,
      PUSHER_APP_KEY: APP.key,
      PUSHER_APP_SECRET: APP.secret,
      JWT_SECRET,
    };
    const [edgePort, edgeInternal, resolverPort, ingestPort, ingestInternal] = await Promise.all(
      Array.from({ length: 5 }, () => freePort()),
    );
    services = await Promise.all([
      spawnService(
        'ws-edge',
        'services/ws-edge/src/main.ts',
        { ...common, EDGE_PORT: String(edgePort), EDGE_INTERNAL_PORT: String(edgeInternal) },
        edgePort!,
      ),
      spawnService(
        'recipient-resolver',
        'services/recipient-resolver/src/main.ts',
        { ...common, RESOLVER_METRICS_PORT: String(resolverPort) },
        resolverPort!,
      ),
      spawnService(
        'alarm-ingest',
        'services/alarm-ingest/src/main.ts',
        { ...common, INGEST_PORT: String(ingestPort), INGEST_INTERNAL_PORT: String(ingestInternal) },
        ingestPort!,
      ),
    ]);
    prometheus = await startPrometheus(
      [
        { job: 'alarm-ingest', address: `127.0.0.1:${ingestInternal}` },
        { job: 'recipient-resolver', address: `127.0.0.1:${resolverPort}` },
        { job: 'ws-edge', address: `127.0.0.1:${edgeInternal}` },
      ],
      [ALERTS],
    );

    // Traffic: alarms to a live pusher-js user, failed authentications, one revoked connection.
    const [edge, , ingest] = services as [SpawnedService, SpawnedService, SpawnedService];
    user = await connectUser(edge, world.users.alice!.id);
    revokedUser = await connectUser(edge, world.users.bob!.id);
    const token = world.collectorTokens.collector!.token;
    for (let n = 0; n < alarms; n++)
      alarmIds.push(await raiseAlarm(ingest.url, token, world.devices.cpe!.id, 'prom', n));
    await vi.waitFor(() => expect(user!.received).toHaveLength(alarms), { timeout: 15_000 });
    const badToken = await fetch(`${ingest.url}/v1/alarms`, {
      method: 'POST',
      headers: { authorization: 'Bearer nope', 'content-type': 'application/json' },
      body: '{}',
    });
    expect(badToken.status).toBe(401);
    const badAuth = await fetch(`${edge.url}/broadcasting/auth`, {
      method: 'POST',
      headers: { authorization: 'Bearer not-a-jwt', 'content-type': 'application/x-www-form-urlencoded' },
      body: 'socket_id=1.1&channel_name=private-user.1',
    });
    expect(badAuth.status).toBe(401);
    await prisma.user.update({ where: { id: world.users.bob!.id }, data: { active: false } });

    // Every target scraped after the traffic settled, twice (rate() needs two samples of the new values).
    await vi.waitFor(
      async () => {
        const accepted = await prometheus.query('sum(alarms_accepted_total)');
        expect(Number(accepted[0]?.value[1])).toBe(alarms);
        const revoked = await prometheus.query('sum(ws_edge_closes_total{code="4009"})');
        expect(Number(revoked[0]?.value[1])).toBe(1);
        const delivered = await prometheus.query('sum(ws_edge_messages_delivered_total)');
        expect(Number(delivered[0]?.value[1])).toBe(alarms * 2);
      },
      { timeout: 20_000, interval: 250 },
    );
    await new Promise((r) => setTimeout(r, 2_500));
  }, 120_000);

  afterAll(async () => {
    user?.disconnect();
    revokedUser?.disconnect();
    await prometheus?.stop();
    await Promise.all(services.map((s) => stopService(s)));
    await prisma?.$disconnect();
    await dropDb?.();
  });

  it('scrapes all three services on their internal ports', async () => {
    const up = await prometheus.query('up');
    expect(up.map((s) => [s.metric.job, s.value[1]]).sort()).toEqual([
      ['alarm-ingest', '1'],
      ['recipient-resolver', '1'],
      ['ws-edge', '1'],
    ]);
  });

  it('answers every dashboard panel query with series', async () => {
    expect(panelQueries.length).toBeGreaterThan(40);
    const empty: string[] = [];
    for (const { panel, expr } of panelQueries) {
      if ((await prometheus.query(expr)).length === 0) empty.push(`${panel}: ${expr}`);
    }
    expect(empty).toEqual([]);
  });

  it('answers every alert rule: its signal with series, the whole expression without error', async () => {
    expect(alertRules.length).toBeGreaterThanOrEqual(10);
    const empty: string[] = [];
    for (const rule of alertRules) {
      const parts = splitAlertExpr(rule.expr);
      expect(parts, `${rule.alert} is not "<signal> <op> <threshold>"`).not.toBeNull();
      if ((await prometheus.query(parts!.signal)).length === 0) empty.push(`${rule.alert}: ${parts!.signal}`);
      await prometheus.query(rule.expr); // throws on a PromQL error
    }
    expect(empty).toEqual([]);
  });

  it('loads the rule file and evaluates every rule without error, and none fires on a healthy stack', async () => {
    const { groups } = await prometheus.api<{
      groups: { rules: { name: string; health: string; lastError?: string; state: string }[] }[];
    }>('/api/v1/rules');
    const rules = groups.flatMap((g) => g.rules);
    expect(rules.map((r) => r.name).sort()).toEqual(alertRules.map((r) => r.alert).sort());
    await vi.waitFor(
      async () => {
        const { groups: now } = await prometheus.api<{
          groups: { rules: { name: string; health: string }[] }[];
        }>('/api/v1/rules');
        for (const r of now.flatMap((g) => g.rules)) expect([r.name, r.health]).toEqual([r.name, 'ok']);
      },
      { timeout: 5_000 },
    );
    const firing = (await prometheus.query('ALERTS{alertstate="firing"}')).map((s) => s.metric.alertname);
    expect(firing).toEqual([]);
  });

  it('passes promtool check rules, and every rule has a runbook paragraph in infra/README.md', () => {
    const check = promtool('check', 'rules', ALERTS);
    expect(check.output).toContain(`SUCCESS: ${alertRules.length} rules found`);
    expect(check.status).toBe(0);
    const readme = readFileSync(`${INFRA}README.md`, 'utf8');
    for (const rule of alertRules) {
      expect(readme, rule.alert).toContain(`#### ${rule.alert}`);
      expect(rule.annotations.runbook).toBe(`infra/README.md#${rule.alert.toLowerCase()}`);
    }
  });

  it('logs one alarm under its eventId in every service: ingest, resolver, edge', () => {
    const lines = (name: string) =>
      services
        .find((s) => s.name === name)!
        .output.join('')
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    // The README's way: the alarm id (the 202's `id`) leads to the event id in the ingest's log.
    const enqueued = lines('alarm-ingest').find((l) => l.alarmId === alarmIds[0]);
    expect(enqueued).toMatchObject({ msg: 'event enqueued', service: 'alarm-ingest' });
    const eventId = enqueued!.eventId as string;
    expect(eventId).toMatch(/^\d+$/);
    expect(lines('recipient-resolver').filter((l) => l.eventId === eventId)).toEqual([
      expect.objectContaining({ msg: 'event broadcast', recipients: 2, delivered: 2 }),
    ]);
    // Both users are on this edge: one line for the event, two sockets reached.
    expect(lines('ws-edge').filter((l) => l.eventId === eventId)).toEqual([
      expect.objectContaining({ msg: 'event delivered to sockets', sockets: 2 }),
    ]);
  });
});
