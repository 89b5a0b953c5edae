import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { generateCollectorToken, hashCollectorToken, signUserJwt } from '@alarmcast/auth';
import type { ProvisionResult } from '@alarmcast/contracts';
import { createPrismaClient, provisionGraph, type PrismaClient } from '@alarmcast/db';
import { createTestDatabase, testEnv, uniqueRedisPrefix } from '@alarmcast/testing';
import { launchChromium } from '../src/chromium.js';
import { JWT_SECRET, startStack, type Stack } from '../src/stack.js';

const u = (ref: string) => ({ ref, email: `${ref}@example.test`, name: ref });
const graph = {
  tenants: [
    {
      ref: 'A',
      name: 'Acme ISP',
      slug: 'acme',
      users: [u('alice')],
      devices: [
        {
          ref: 'lobby',
          oui: '00D09E',
          productClass: 'HG8245',
          serialNumber: 'ACME0001',
          name: 'Lobby router',
        },
        { ref: 'attic', oui: '00259E', productClass: 'F660', serialNumber: 'ACME0002' },
      ],
      collectorTokens: [{ ref: 'acme', name: 'acme collector', scopes: ['alarms', 'informs'] }],
    },
    {
      ref: 'B',
      name: 'Bravo Net',
      slug: 'bravo',
      users: [u('bob')],
      devices: [{ ref: 'bravo1', oui: '00D09E', productClass: 'HG8245', serialNumber: 'BRAVO0009' }],
      collectorTokens: [{ ref: 'bravo', name: 'bravo collector', scopes: ['alarms', 'informs'] }],
    },
  ],
};

/**
 * The console's device panel and tenant summary in Chromium against the real services: an alarm row names
 * its device and opens its panel, which follows informs live; a device that falls silent goes offline in the
 * panel, in the header's counts and as an offline alarm in the list; another tenant's user cannot open it.
 */
describe('console device panel in Chromium', () => {
  let prisma: PrismaClient;
  let stack: Stack;
  let world: ProvisionResult;
  let browser: Browser;
  let dropDb: () => Promise<void>;

  const post = async (collector: string, path: string, body: unknown) => {
    const res = await fetch(`${stack.ingest.url}${path}`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${world.collectorTokens[collector]!.token}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify(body),
    });
    expect(res.status).toBeLessThan(300);
    return (await res.json()) as Record<string, unknown>;
  };
  const inform = (collector: string, device: string, over: Record<string, unknown> = {}) =>
    post(collector, '/v1/devices/informs', {
      informs: [
        {
          deviceId: world.devices[device]!.id,
          informedAt: new Date().toISOString(),
          eventCodes: ['2 PERIODIC'],
          periodicInformInterval: 300,
          softwareVersion: 'V3R017C10S115',
          hardwareVersion: 'HW-A',
          uptimeS: 3600,
          ...over,
        },
      ],
    });

  const signIn = async (user: string, hash = ''): Promise<Page> => {
    const page = await (await browser.newContext({ viewport: { width: 1300, height: 600 } })).newPage();
    await page.goto(`${stack.ingest.url}/console/${hash}`);
    await page.fill('#token', await signUserJwt(JWT_SECRET, world.users[user]!.id));
    await page.click('button[type=submit]');
    await page.waitForSelector('#connection[data-state=live]', { timeout: 10_000 });
    return page;
  };

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
      // Short presence so the offline test takes seconds: offline 1 × interval + 1 s after the last inform.
      env: {
        DEVICE_OFFLINE_INTERVALS: '1',
        DEVICE_OFFLINE_GRACE_S: '1',
        PRESENCE_SWEEP_INTERVAL_MS: '200',
        TENANT_SUMMARY_INTERVAL_MS: '500',
      },
    });
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await stack?.close();
    await prisma?.$disconnect();
    await dropDb?.();
  });

  it('names the device in the alarm list, opens its panel from the row, and shows an inform within a second', async () => {
    await inform('acme', 'lobby', { eventCodes: ['1 BOOT'], softwareVersion: 'V1' });
    const raised = await post('acme', '/v1/alarms', {
      deviceId: world.devices.lobby!.id,
      alarmIdentifier: 'wan-down',
      eventType: 'Communications Alarm',
      probableCause: 'Loss of signal',
      specificProblem: 'WAN link down',
      perceivedSeverity: 'Major',
    });
    const alice = await signIn('alice');
    const row = alice.locator(`tr[data-alarm-id="${String(raised.id)}"]`);
    await row.waitFor();
    // The device by name and serial number, not `#<id>`.
    expect(await row.locator('.device-link').textContent()).toBe('Lobby router');
    expect(await row.locator('.device-cell .serial').textContent()).toBe('ACME0001');

    await row.locator('.device-link').click();
    const panel = alice.locator(`#device-panel[data-device-id="${world.devices.lobby!.id}"]`);
    await panel.waitFor();
    await alice.waitForSelector('#device-panel[data-state=live]');
    expect(await alice.textContent('#device-title')).toBe('Lobby router');
    expect(await alice.getAttribute('#device-online', 'data-online')).toBe('true');
    expect(await alice.textContent('#device-software')).toBe('V1');

    // A new version, informed by the collector: on the open panel within a second, without reload.
    const posted = Date.now();
    await inform('acme', 'lobby', { eventCodes: ['1 BOOT', 'M Reboot'], softwareVersion: 'V2' });
    await alice.waitForSelector('#device-software:text-is("V2")', { timeout: 1000 });
    expect(Date.now() - posted).toBeLessThan(1000);
    // Listed as a recent change.
    await alice.waitForSelector('#device-changes li:has-text("software V2")');
    expect(alice.url()).toContain(`#device=${world.devices.lobby!.id}`);
  });

  it('shows a device going offline: badge, header counts and the offline alarm in the list', async () => {
    const attic = world.devices.attic!.id;
    await inform('acme', 'attic', { eventCodes: ['1 BOOT'] });
    const alice = await signIn('alice', `#device=${attic}`);
    await alice.waitForSelector(`#device-panel[data-device-id="${attic}"] #device-online[data-online=true]`);
    await alice.waitForSelector('#device-summary:not([hidden])');
    const offlineBefore = Number(await alice.textContent('#summary-offline'));

    // The collector shortens its interval, and then nothing: offline once 1 × 2 s + 1 s have passed.
    await inform('acme', 'attic', { periodicInformInterval: 2 });
    await alice.waitForSelector('#device-changes li:has-text("inform interval 2 s")');
    await alice.waitForSelector('#device-online[data-online=false]', { timeout: 10_000 });
    await alice.waitForSelector('#device-changes li.presence:has-text("offline")');
    // The offline alarm through the reliable path, with the device's serial (it has no name).
    const offlineRow = alice.locator('tbody tr', { hasText: 'alarmcast.device-offline' });
    await offlineRow.waitFor({ timeout: 10_000 });
    expect(await offlineRow.locator('.device-link').textContent()).toBe('ACME0002');
    await alice.waitForFunction(
      (before) => Number(document.getElementById('summary-offline')!.textContent) > before,
      offlineBefore,
      { timeout: 10_000 },
    );

    // It informs again: online, and the offline alarm clears.
    await inform('acme', 'attic', { eventCodes: ['1 BOOT'], periodicInformInterval: 300 });
    await alice.waitForSelector('#device-online[data-online=true]', { timeout: 5000 });
    await alice.waitForSelector('tbody tr.cleared:has-text("alarmcast.device-offline")', { timeout: 10_000 });

    // The Devices view lists it and opens it too.
    await alice.click('#device-close');
    await alice.click('#show-devices');
    await alice.locator(`#device-rows tr[data-device-id="${attic}"] button`).click();
    await alice.waitForSelector(`#device-panel[data-device-id="${attic}"][data-state=live]`);
  });

  it('does not open a device of another tenant for its user', async () => {
    const lobby = world.devices.lobby!.id;
    const bob = await signIn('bob', `#device=${lobby}`);
    await bob.waitForSelector('#device-panel[data-state=refused]', { timeout: 5000 });
    expect(await bob.textContent('#device-error')).toMatch(/may not see/);
    expect(await bob.isVisible('#device-online')).toBe(false);
    expect(await bob.isVisible('#device-facts')).toBe(false);
    // Nothing of it reaches the page later either.
    await inform('acme', 'lobby', { eventCodes: ['1 BOOT'], softwareVersion: 'V-secret' });
    await new Promise((r) => setTimeout(r, 500));
    expect(await bob.content()).not.toContain('V-secret');
    expect(await bob.content()).not.toContain('Lobby router');
    // Neither the API nor the channel gives it.
    const res = await fetch(`${stack.ingest.url}/v1/devices/${lobby}`, {
      headers: { authorization: `Bearer ${await signUserJwt(JWT_SECRET, world.users.bob!.id)}` },
    });
    expect(res.status).toBe(404);
  });
});
