import { createHash, createHmac } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { generateCollectorToken, hashCollectorToken, signUserJwt } from '@alarmcast/auth';
import { userChannel, type ProvisionResult } from '@alarmcast/contracts';
import { createPrismaClient, provisionGraph, type PrismaClient } from '@alarmcast/db';
import { createTestDatabase, testEnv, uniqueRedisPrefix } from '@alarmcast/testing';
import { launchChromium } from '../src/chromium.js';
import { installPageMetrics, peakPerSecond, percentile, type PageMetrics } from '../src/page-metrics.js';
import { APP, JWT_SECRET } from '../src/stack.js';
import { freePort, spawnService, stopService, type SpawnedService } from '../src/spawned-stack.js';

/** The storm, as issue 16 puts it: 10,000 active alarms on screen, then 500 new ones a second. */
const SEEDED = 10_000;
const RATE_PER_S = 500;
const STORM_S = 10;
const DEVICES = 100;
const IN_FLIGHT = 200;

/**
 * Bounds the page must hold under the storm. The console before virtualization (every row redrawn on every
 * event) measured on this machine: longest frame ~12 s, event-to-paint p95 ~13 s (README, "Operator console").
 */
const MAX_FRAME_MS = 500;
const MAX_EVENT_TO_PAINT_P95_MS = 250;

const SEVERITIES = ['Critical', 'Major', 'Minor', 'Warning'] as const;

/**
 * The console in Chromium during an alarm storm, against the whole stack as separate processes (ingest,
 * resolver, edge, Postgres, Redis): 10,000 active alarms seeded in the database and loaded by the page through
 * GET /v1/alarms, then 500 new alarms a second for 10 s through POST /v1/alarms. The page must keep painting
 * (longest frame) and show each event soon after it arrives (event-to-paint), and stay usable (filters) after.
 */
describe('operator console in an alarm storm', () => {
  let prisma: PrismaClient;
  let world: ProvisionResult;
  let browser: Browser;
  let services: SpawnedService[] = [];
  let ingestUrl: string;
  let edgeUrl: string;
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
            ref: 'T',
            name: 'Storm ISP',
            slug: 'storm',
            users: [{ ref: 'noc', email: 'noc@storm.test', name: 'NOC' }],
            devices: Array.from({ length: DEVICES }, (_, i) => ({
              ref: `cpe${i}`,
              oui: '00D09E',
              productClass: 'HG8245',
              serialNumber: `STORM${String(i).padStart(4, '0')}`,
            })),
            collectorTokens: [{ ref: 'c', name: 'storm collector' }],
          },
        ],
      },
      { hashToken: hashCollectorToken, newToken: generateCollectorToken },
    );
    // Seeding is not what is measured: one INSERT writes the 10,000 active alarms the page then loads.
    const seed = new pg.Client({ connectionString: db.url });
    await seed.connect();
    const deviceIds = Object.values(world.devices).map((d) => d.id);
    await seed.query(
      `INSERT INTO alarms (tenant_id, device_id, alarm_identifier, event_type, probable_cause, specific_problem,
                           perceived_severity, additional_text, additional_information, raised_at, changed_at)
       SELECT $1::int, ($2::int[])[1 + i % $3::int], 'seed-' || lpad(i::text, 6, '0'), 'Communications Alarm',
              'Loss of signal', 'WAN link down', ($4::text[])[1 + i % 4]::perceived_severity,
              'seeded ' || i, 'slot=' || (i % 8),
              now() - interval '1 hour' + i * interval '10 ms', now() - interval '1 hour' + i * interval '10 ms'
         FROM generate_series(1, $5::int) i`,
      [world.tenants.T!.id, deviceIds, deviceIds.length, SEVERITIES, SEEDED],
    );
    await seed.end();

    // As in production: three processes; the ingest tells the page where the edge is.
    const common = {
      NODE_ENV: 'development',
      DATABASE_URL: db.url,
      REDIS_URL: testEnv().redisUrl,
      REDIS_PREFIX: uniqueRedisPrefix(),
      LOG_LEVEL: 'warn',
      PUSHER_APP_ID: APP.id,
      PUSHER_APP_KEY: APP.key,
      PUSHER_APP_SECRET: APP.secret,
      JWT_SECRET,
    };
    const [edgePort, resolverPort, ingestPort] = [await freePort(), await freePort(), await freePort()];
    const [edge, resolver] = await Promise.all([
      spawnService(
        'ws-edge',
        'services/ws-edge/src/main.ts',
        { ...common, EDGE_PORT: String(edgePort), EDGE_INTERNAL_PORT: '0' },
        edgePort,
      ),
      spawnService(
        'resolver',
        'services/recipient-resolver/src/main.ts',
        { ...common, RESOLVER_METRICS_PORT: String(resolverPort) },
        resolverPort,
      ),
    ]);
    const ingest = await spawnService(
      'alarm-ingest',
      'services/alarm-ingest/src/main.ts',
      { ...common, INGEST_PORT: String(ingestPort), INGEST_INTERNAL_PORT: '0', CONSOLE_EDGE_URL: edge.url },
      ingestPort,
    );
    services = [ingest, resolver, edge];
    ingestUrl = ingest.url;
    edgeUrl = edge.url;
    browser = await launchChromium();
  }, 90_000);

  afterAll(async () => {
    await browser?.close();
    await Promise.all(services.map((s) => stopService(s)));
    await prisma?.$disconnect();
    await dropDb?.();
  });

  const summary = (page: Page) => page.locator('#summary').textContent();
  const waitForActive = (page: Page, n: number) =>
    vi.waitFor(async () => expect(await summary(page)).toBe(`${n} active, 0 cleared`), {
      timeout: 30_000,
      interval: 100,
    });

  /** Starts recording in the page from a clean slate. */
  const record = (page: Page) =>
    page.evaluate(() => {
      const m = (window as unknown as { stormMetrics: PageMetrics }).stormMetrics;
      m.longFrames = [];
      m.frameGaps = [];
      m.eventToPaint = [];
      m.messages = [];
      m.recording = true;
    });

  /** Stops recording, prints what the page measured and checks it against the bounds. */
  const stopAndCheck = async (page: Page, label: string, load: string) => {
    const m = await page.evaluate(() => {
      const metrics = (window as unknown as { stormMetrics: PageMetrics }).stormMetrics;
      metrics.recording = false;
      return metrics;
    });
    const longestFrame = Math.max(0, ...m.longFrames, ...m.frameGaps);
    const e2p = { p50: percentile(m.eventToPaint, 50), p95: percentile(m.eventToPaint, 95) };
    const e2pMax = Math.max(0, ...m.eventToPaint);
    console.log(
      [
        `${label}: ${load}`,
        `  the page got ${m.messages.length} WebSocket messages, at most ${peakPerSecond(m.messages)} in one second`,
        `  longest frame ${longestFrame.toFixed(0)} ms (${m.frameSource}: ${m.longFrames.length} over 50 ms; ` +
          `gaps between animation frames: p50 ${percentile(m.frameGaps, 50).toFixed(1)} ms, ` +
          `p99 ${percentile(m.frameGaps, 99).toFixed(1)} ms, ${m.frameGaps.length} frames)`,
        `  event-to-paint over ${m.eventToPaint.length} frames with events: p50 ${e2p.p50.toFixed(1)} ms, ` +
          `p95 ${e2p.p95.toFixed(1)} ms, max ${e2pMax.toFixed(1)} ms`,
      ].join('\n'),
    );
    // The page kept drawing frames through the storm and measured the frames that carried events.
    expect(m.frameGaps.length).toBeGreaterThan(STORM_S * 10);
    expect(m.eventToPaint.length).toBeGreaterThan(STORM_S * 10);
    expect(longestFrame).toBeLessThan(MAX_FRAME_MS);
    expect(e2p.p95).toBeLessThan(MAX_EVENT_TO_PAINT_P95_MS);
  };

  /**
   * Calls `send(i)` RATE_PER_S times a second for STORM_S seconds, `perCall` items at a time, with at most
   * IN_FLIGHT calls open; resolves with the number of calls made once all have answered. Offering for a fixed
   * time keeps the test bounded on a slow machine: the storm gets smaller, never longer.
   */
  const offer = (perCall: number, send: (call: number) => Promise<void>) => {
    const started = performance.now();
    return new Promise<number>((resolve, reject) => {
      let sent = 0;
      let inFlight = 0;
      let over = false;
      const pump = () => {
        const elapsedS = (performance.now() - started) / 1000;
        over = elapsedS >= STORM_S;
        const due = over ? sent : Math.floor((elapsedS * RATE_PER_S) / perCall);
        while (sent < due && inFlight < IN_FLIGHT) {
          inFlight++;
          send(sent++).then(() => {
            inFlight--;
            if (over && inFlight === 0) resolve(sent);
          }, reject);
        }
        if (!over) setTimeout(pump, 5);
        else if (inFlight === 0) resolve(sent);
      };
      pump();
    });
  };

  it('keeps painting, shows events a frame or few after they arrive, and stays usable: 10,000 alarms, then 500/s', async () => {
    const context = await browser.newContext({ viewport: { width: 1200, height: 720 } });
    const page = await context.newPage();
    await page.addInitScript(installPageMetrics);
    await page.goto(`${ingestUrl}/console/`);
    await page.fill('#token', await signUserJwt(JWT_SECRET, world.users.noc!.id));
    const loadStarted = Date.now();
    await page.click('button[type=submit]');
    await page.waitForSelector('#connection[data-state=live]', { timeout: 10_000 });
    await waitForActive(page, SEEDED);
    const loadMs = Date.now() - loadStarted;
    expect(await page.locator('#count-Critical').textContent()).toBe((SEEDED / 4).toLocaleString('en-US'));
    const tenantId = world.tenants.T!.id;
    const userId = world.users.noc!.id;
    const deviceIds = Object.values(world.devices).map((d) => d.id);

    // 1. The whole pipeline: paced POST /v1/alarms, each a new alarm.
    await record(page);
    const ids: string[] = [];
    const statuses = new Map<number, number>();
    const token = world.collectorTokens.c!.token;
    const postMs: number[] = [];
    const stormStarted = performance.now();
    const offered = await offer(1, async (i) => {
      const t = performance.now();
      const res = await fetch(`${ingestUrl}/v1/alarms`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          deviceId: deviceIds[i % DEVICES],
          alarmIdentifier: `storm-${String(i).padStart(6, '0')}`,
          eventType: 'Communications Alarm',
          probableCause: 'Loss of signal',
          specificProblem: 'Regional outage',
          perceivedSeverity: SEVERITIES[i % 4],
          additionalText: `storm alarm ${i}`,
        }),
      });
      postMs.push(performance.now() - t);
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      if (res.ok) ids[i] = ((await res.json()) as { id: string }).id;
    });
    const sendS = (performance.now() - stormStarted) / 1000;
    // An overloaded ingest may refuse with 503 + Retry-After (nothing stored, the collector retries): that
    // is the ingest's business, not the console's. Anything else is a failure.
    expect([...statuses.keys()].filter((status) => status !== 202 && status !== 503)).toEqual([]);
    const accepted = ids.flatMap((id, i) => (id === undefined ? [] : [i]));
    const total = accepted.length;
    expect(total).toBeGreaterThan(200);
    // Every alarm reaches the page (the storm is over when the last one is on screen).
    await waitForActive(page, SEEDED + total);
    const deliveredS = (performance.now() - stormStarted) / 1000;
    await stopAndCheck(
      page,
      'console storm, whole pipeline',
      `${SEEDED} alarms loaded in ${loadMs} ms; POST /v1/alarms offered at ${RATE_PER_S}/s for ${STORM_S} s: ` +
        `${offered} sent, ${total} accepted (${Math.round(total / STORM_S)}/s; ${statuses.get(503) ?? 0} ` +
        `answered 503), POST p50 ${percentile(postMs, 50).toFixed(0)} ms, p99 ` +
        `${percentile(postMs, 99).toFixed(0)} ms; last answer at ${sendS.toFixed(1)} s, all on screen at ` +
        `${deliveredS.toFixed(1)} s`,
    );

    // 2. Exactly 500 alarms a second at the page, whatever the ingest manages on this machine: published
    // through the edge's Pusher HTTP API (what a Laravel app's broadcast() uses), ten events per batch.
    await record(page);
    const EDGE_BATCH = 10;
    const edgeAlarm = (i: number) => ({
      id: String(1_000_000_000 + i),
      tenant_id: tenantId,
      device_id: deviceIds[i % DEVICES]!,
      alarm_identifier: `edge-${String(i).padStart(6, '0')}`,
      event_type: 'Communications Alarm',
      probable_cause: 'Loss of signal',
      specific_problem: 'Regional outage',
      perceived_severity: SEVERITIES[i % 4]!,
      managed_object_instance: null,
      additional_text: `edge alarm ${i}`,
      additional_information: null,
      raised_at: new Date().toISOString(),
      changed_at: new Date().toISOString(),
      cleared_at: null,
      acknowledged_at: null,
    });
    const batches = await offer(EDGE_BATCH, async (b) => {
      const batch = Array.from({ length: EDGE_BATCH }, (_, k) => ({
        name: 'App\\Events\\AlarmCreated',
        channel: userChannel(userId),
        data: JSON.stringify({ alarm: edgeAlarm(b * EDGE_BATCH + k) }),
      }));
      const res = await pusherPost(edgeUrl, `/apps/${APP.id}/batch_events`, JSON.stringify({ batch }));
      expect(res.status).toBe(200);
    });
    const published = batches * EDGE_BATCH;
    await waitForActive(page, SEEDED + total + published);
    await stopAndCheck(
      page,
      'console storm, 500/s at the page',
      `${published} alarms published through the edge in ${STORM_S} s (${published / STORM_S}/s) ` +
        `onto ${SEEDED + total} on screen`,
    );

    // Only the rows in view are in the DOM; a Critical alarm (the newest) is the first row.
    const rows = await page.locator('tbody tr').count();
    expect(rows).toBeGreaterThan(10);
    expect(rows).toBeLessThan(60);
    expect(await page.locator('tbody tr').first().getAttribute('data-severity')).toBe('Critical');

    // Still usable: free text, device and severity filters answer over all of them.
    const stormOn = (pick: (i: number) => boolean) =>
      accepted.filter(pick).length + Array.from({ length: published }, (_, i) => i).filter(pick).length;
    const probe = accepted[Math.floor(total / 2)]!;
    await page.fill('#filter-text', `storm-${String(probe).padStart(6, '0')}`);
    await page.waitForSelector(`tbody tr[data-alarm-id="${ids[probe]}"]`);
    expect(await page.locator('tbody tr').count()).toBe(1);
    await page.fill('#filter-text', '');
    await page.fill('#filter-device', String(deviceIds[7]));
    await vi.waitFor(async () =>
      expect(await summary(page)).toContain(
        `; ${stormOn((i) => i % DEVICES === 7) + SEEDED / DEVICES} match`,
      ),
    );
    await page.click('#filter-clear');
    // By keyboard: the counters are buttons, the list scrolls with the keys and draws the rows it reaches.
    await page.focus('#list');
    await page.keyboard.press('End');
    await vi.waitFor(async () =>
      expect(await page.locator('tbody tr').last().getAttribute('aria-rowindex')).toBe(
        String(SEEDED + total + published + 1),
      ),
    );
    await page.focus('button[data-severity=Critical]');
    await page.keyboard.press('Space');
    await vi.waitFor(async () =>
      expect(await summary(page)).toContain(
        `; ${(stormOn((i) => i % 4 === 0) + SEEDED / 4).toLocaleString('en-US')} match`,
      ),
    );
    expect(await page.locator('button[data-severity=Critical]').getAttribute('aria-pressed')).toBe('true');
    expect(await page.locator('tbody tr[data-severity=Major]').count()).toBe(0);
    await context.close();
  }, 90_000);
});

/** A request to the edge's Pusher HTTP API, signed as Pusher's server libraries sign it. */
function pusherPost(edgeUrl: string, path: string, body: string): Promise<Response> {
  const params: Record<string, string> = {
    auth_key: APP.key,
    auth_timestamp: String(Math.floor(Date.now() / 1000)),
    auth_version: '1.0',
    body_md5: createHash('md5').update(body).digest('hex'),
  };
  const query = Object.keys(params)
    .sort()
    .map((k) => `${k}=${params[k]}`)
    .join('&');
  const signature = createHmac('sha256', APP.secret).update(`POST\n${path}\n${query}`).digest('hex');
  return fetch(`${edgeUrl}${path}?${query}&auth_signature=${signature}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
  });
}
