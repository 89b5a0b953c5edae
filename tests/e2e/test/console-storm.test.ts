import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { generateCollectorToken, hashCollectorToken, signUserJwt } from '@alarmcast/auth';
import type { ProvisionResult } from '@alarmcast/contracts';
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
        { ...common, EDGE_PORT: String(edgePort) },
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
      { ...common, INGEST_PORT: String(ingestPort), CONSOLE_EDGE_URL: edge.url },
      ingestPort,
    );
    services = [ingest, resolver, edge];
    ingestUrl = ingest.url;
    browser = await launchChromium();
  }, 90_000);

  afterAll(async () => {
    await browser?.close();
    await Promise.all(services.map((s) => stopService(s)));
    await prisma?.$disconnect();
    await dropDb?.();
  });

  const summary = (page: Page) => page.locator('#summary').textContent();

  it('keeps painting, shows events a frame or few after they arrive, and stays usable: 10,000 alarms, then 500/s offered', async () => {
    const context = await browser.newContext({ viewport: { width: 1200, height: 720 } });
    const page = await context.newPage();
    await page.addInitScript(installPageMetrics);
    await page.goto(`${ingestUrl}/console/`);
    await page.fill('#token', await signUserJwt(JWT_SECRET, world.users.noc!.id));
    const loadStarted = Date.now();
    await page.click('button[type=submit]');
    await page.waitForSelector('#connection[data-state=live]', { timeout: 10_000 });
    await vi.waitFor(async () => expect(await summary(page)).toBe(`${SEEDED} active, 0 cleared`), {
      timeout: 30_000,
      interval: 100,
    });
    const loadMs = Date.now() - loadStarted;
    expect(await page.locator('#count-Critical').textContent()).toBe((SEEDED / 4).toLocaleString('en-US'));

    // The storm: paced POSTs, each a new alarm, with a cap on requests in flight.
    await page.evaluate(() => {
      (window as unknown as { stormMetrics: PageMetrics }).stormMetrics.recording = true;
    });
    const ids: string[] = [];
    const statuses = new Map<number, number>();
    const token = world.collectorTokens.c!.token;
    const deviceIds = Object.values(world.devices).map((d) => d.id);
    const postMs: number[] = [];
    const post = async (i: number) => {
      const t = performance.now();
      const res = await fetch(`${ingestUrl}/v1/alarms`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          deviceId: deviceIds[i % deviceIds.length],
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
    };
    // Offered at RATE_PER_S for STORM_S seconds (with at most IN_FLIGHT requests open); what the pipeline
    // accepts in that time is the storm, so a slow machine makes it smaller, never longer.
    const stormStarted = performance.now();
    const total = await new Promise<number>((resolve, reject) => {
      let sent = 0;
      let inFlight = 0;
      let over = false;
      const pump = () => {
        const elapsedS = (performance.now() - stormStarted) / 1000;
        over = elapsedS >= STORM_S;
        const due = over ? sent : Math.floor(elapsedS * RATE_PER_S);
        while (sent < due && inFlight < IN_FLIGHT) {
          inFlight++;
          post(sent++).then(() => {
            inFlight--;
            if (over && inFlight === 0) resolve(sent);
          }, reject);
        }
        if (!over) setTimeout(pump, 5);
        else if (inFlight === 0) resolve(sent);
      };
      pump();
    });
    const sendS = (performance.now() - stormStarted) / 1000;
    expect(Object.fromEntries(statuses)).toEqual({ 202: total });

    // Every alarm reaches the page (the storm is over when the last one is on screen).
    await vi.waitFor(async () => expect(await summary(page)).toBe(`${SEEDED + total} active, 0 cleared`), {
      timeout: 30_000,
      interval: 100,
    });
    const deliveredS = (performance.now() - stormStarted) / 1000;
    const m = await page.evaluate(() => {
      const metrics = (window as unknown as { stormMetrics: PageMetrics }).stormMetrics;
      metrics.recording = false;
      return metrics;
    });

    const longestFrame = Math.max(0, ...m.longFrames, ...m.frameGaps);
    const e2p = {
      p50: percentile(m.eventToPaint, 50),
      p95: percentile(m.eventToPaint, 95),
      max: Math.max(0, ...m.eventToPaint),
    };
    console.log(
      [
        `console storm: ${SEEDED} alarms loaded in ${loadMs} ms; POSTs offered at ${RATE_PER_S}/s for ` +
          `${STORM_S} s: ${total} accepted (${Math.round(total / STORM_S)}/s, last answer at ${sendS.toFixed(1)} s), ` +
          `POST p50 ${percentile(postMs, 50).toFixed(0)} ms, p99 ${percentile(postMs, 99).toFixed(0)} ms; ` +
          `all on screen ${deliveredS.toFixed(1)} s after the first POST; ` +
          `the page got ${m.messages.length} WebSocket messages, at most ${peakPerSecond(m.messages)} in one second`,
        `  longest frame ${longestFrame.toFixed(0)} ms (${m.frameSource}: ${m.longFrames.length} over 50 ms; ` +
          `rAF gaps: p50 ${percentile(m.frameGaps, 50).toFixed(1)} ms, p99 ${percentile(m.frameGaps, 99).toFixed(1)} ms, ` +
          `${m.frameGaps.length} frames)`,
        `  event-to-paint over ${m.eventToPaint.length} frames with events: p50 ${e2p.p50.toFixed(1)} ms, ` +
          `p95 ${e2p.p95.toFixed(1)} ms, max ${e2p.max.toFixed(1)} ms`,
      ].join('\n'),
    );
    // The page kept drawing frames through the storm and measured every frame that carried events.
    expect(m.frameGaps.length).toBeGreaterThan(STORM_S * 10);
    expect(m.eventToPaint.length).toBeGreaterThan(STORM_S * 10);
    expect(longestFrame).toBeLessThan(MAX_FRAME_MS);
    expect(e2p.p95).toBeLessThan(MAX_EVENT_TO_PAINT_P95_MS);

    // Only the rows in view are in the DOM; a Critical alarm of the storm (the newest) is the first row.
    const rows = await page.locator('tbody tr').count();
    expect(rows).toBeGreaterThan(10);
    expect(rows).toBeLessThan(60);
    const first = page.locator('tbody tr').first();
    expect(await first.getAttribute('data-severity')).toBe('Critical');
    expect(ids).toContain(await first.getAttribute('data-alarm-id'));

    // Still usable: free text, device and severity filters answer over all of them.
    const stormOn = (pick: (i: number) => boolean) =>
      Array.from({ length: total }, (_, i) => i).filter(pick).length;
    await page.fill('#filter-text', 'storm-000123');
    await page.waitForSelector(`tbody tr[data-alarm-id="${ids[123]}"]`);
    expect(await page.locator('tbody tr').count()).toBe(1);
    await page.fill('#filter-text', '');
    await page.fill('#filter-device', String(deviceIds[7]));
    await vi.waitFor(async () =>
      expect(await summary(page)).toContain(
        `; ${stormOn((i) => i % DEVICES === 7) + SEEDED / DEVICES} match`,
      ),
    );
    await page.click('#filter-clear');
    await page.click('button[data-severity=Critical]');
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
