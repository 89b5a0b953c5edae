import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { generateCollectorToken, hashCollectorToken, signUserJwt } from '@alarmcast/auth';
import type { ProvisionResult } from '@alarmcast/contracts';
import { createPrismaClient, provisionGraph, type PrismaClient } from '@alarmcast/db';
import { createTestDatabase, testEnv, uniqueRedisPrefix } from '@alarmcast/testing';
import { launchChromium } from '../src/chromium.js';
import { JWT_SECRET, startStack, type Stack } from '../src/stack.js';

const graph = {
  tenants: [
    {
      ref: 'A',
      name: 'Acme ISP',
      slug: 'acme',
      users: [
        { ref: 'alice', email: 'alice@example.test', name: 'alice' },
        { ref: 'boss', email: 'boss@example.test', name: 'boss', role: 'tenant_admin' },
      ],
      devices: [{ ref: 'cpe1', oui: '00D09E', productClass: 'HG8245', serialNumber: 'ACME0001' }],
      collectorTokens: [{ ref: 'acme', name: 'acme collector' }],
    },
  ],
};

/**
 * The console's notification settings in Chromium: a rule changed on the page applies to the next alarm
 * (not pushed), a Critical one still is (bypass) and rings: a desktop notification for `notify: true`.
 * The page's Notification is recorded by an init script (with the permission granted), as a browser with
 * notifications allowed would show them.
 */
describe('console notification settings in Chromium', () => {
  let prisma: PrismaClient;
  let stack: Stack;
  let world: ProvisionResult;
  let browser: Browser;
  let dropDb: () => Promise<void>;

  beforeAll(async () => {
    const db = await createTestDatabase(testEnv().postgresAdminUrl, testEnv().postgresTemplate);
    dropDb = db.drop;
    prisma = createPrismaClient(db.url);
    world = await provisionGraph(prisma, graph, {
      hashToken: hashCollectorToken,
      newToken: generateCollectorToken,
    });
    stack = await startStack({
      databaseUrl: db.url,
      redisUrl: testEnv().redisUrl,
      redisPrefix: uniqueRedisPrefix(),
    });
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await stack.close();
    await prisma.$disconnect();
    await dropDb();
  });

  const raise = async (ident: string, severity: string) => {
    const res = await fetch(`${stack.ingest.url}/v1/alarms`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${world.collectorTokens.acme!.token}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify({
        deviceId: world.devices.cpe1!.id,
        alarmIdentifier: ident,
        eventType: 'Communications Alarm',
        probableCause: 'Loss of signal',
        specificProblem: `${ident} problem`,
        perceivedSeverity: severity,
      }),
    });
    expect(res.status).toBe(202);
    return ((await res.json()) as { id: string }).id;
  };
  const signIn = async (user: string): Promise<Page> => {
    const context = await browser.newContext({ viewport: { width: 1200, height: 800 } });
    await context.addInitScript(() => {
      const shown: { title: string; tag?: string }[] = [];
      (window as unknown as { shownNotifications: typeof shown }).shownNotifications = shown;
      class RecordedNotification {
        static permission = 'granted';
        static requestPermission = () => Promise.resolve('granted');
        constructor(title: string, options?: { tag?: string }) {
          shown.push({ title, tag: options?.tag });
        }
      }
      (window as unknown as { Notification: unknown }).Notification = RecordedNotification;
    });
    const page = await context.newPage();
    await page.goto(`${stack.ingest.url}/console/`);
    await page.fill('#token', await signUserJwt(JWT_SECRET, world.users[user]!.id));
    await page.click('button[type=submit]');
    await page.waitForSelector('#connection[data-state=live]', { timeout: 10_000 });
    return page;
  };
  const shown = (page: Page) =>
    page.evaluate(() =>
      (window as unknown as { shownNotifications: { tag?: string }[] }).shownNotifications.map((n) => n.tag),
    );

  it('applies a rule changed on the page to the next alarm; a Critical one is still pushed, with a notification', async () => {
    const alice = await signIn('alice');
    // Before any rule: a Major is pushed and rings.
    const first = await raise('before', 'Major');
    await alice.waitForSelector(`tr[data-alarm-id="${first}"]`);
    await expect.poll(() => shown(alice)).toEqual([`alarm-${first}`]);

    await alice.click('#settings-toggle');
    await alice.waitForSelector('#settings-view:not([hidden])');
    await alice.selectOption('#pref-min-severity', 'Critical');
    await alice.click('#prefs-form button[type=submit]');
    await alice.waitForSelector('#prefs-status:has-text("Saved")');
    // No tenant admin: no tenant section.
    expect(await alice.isVisible('#tenant-form')).toBe(false);
    await alice.click('#settings-toggle');

    const muted = await raise('after', 'Major');
    const critical = await raise('critical', 'Critical');
    // The Critical (raised after it, same device: delivered in order) arrives; the Major never does.
    await alice.waitForSelector(`tr[data-alarm-id="${critical}"]`, { timeout: 10_000 });
    expect(await alice.locator(`tr[data-alarm-id="${muted}"]`).count()).toBe(0);
    await expect.poll(() => shown(alice)).toEqual([`alarm-${first}`, `alarm-${critical}`]);
    // The API still lists it (preferences never hide data), the page picks it up on a reload.
    await alice.reload();
    await alice.waitForSelector(`tr[data-alarm-id="${muted}"]`, { timeout: 10_000 });

    // The quiet hours in force are shown, and a tenant admin gets the tenant's defaults and locks.
    const boss = await signIn('boss');
    await boss.click('#settings-toggle');
    await boss.waitForSelector('#tenant-form:not([hidden])');
    await boss.fill(
      '#tenant-doc',
      JSON.stringify({
        defaults: {
          quietHours: { timeZone: 'UTC', windows: [{ days: ['mon'], start: '01:00', end: '02:00' }] },
        },
        locks: ['quietHours'],
        criticalBypass: true,
      }),
    );
    await boss.click('#tenant-form button[type=submit]');
    await boss.waitForSelector('#tenant-status:has-text("Saved")');
    await boss.waitForSelector('#quiet-summary:has-text("mon 01:00-02:00")');
    expect(await boss.isDisabled('#pref-quiet')).toBe(true);
  }, 60_000);
});
