import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { generateCollectorToken, hashCollectorToken, signUserJwt } from '@alarmcast/auth';
import type { ProvisionResult } from '@alarmcast/contracts';
import { createPrismaClient, provisionGraph, type PrismaClient } from '@alarmcast/db';
import { createTestDatabase, testEnv, uniqueRedisPrefix } from '@alarmcast/testing';
import { launchChromium } from '../src/chromium.js';
import { JWT_SECRET, startStack, type Stack } from '../src/stack.js';

const SCREENSHOT = fileURLToPath(new URL('../../../docs/console.png', import.meta.url));
const u = (ref: string) => ({ ref, email: `${ref}@example.test`, name: ref });
const graph = {
  tenants: [
    {
      ref: 'A',
      name: 'Acme ISP',
      slug: 'acme',
      users: [u('alice')],
      devices: [
        { ref: 'cpe1', oui: '00D09E', productClass: 'HG8245', serialNumber: 'ACME0001' },
        { ref: 'cpe2', oui: '00259E', productClass: 'F660', serialNumber: 'ACME0002' },
      ],
      collectorTokens: [{ ref: 'acme', name: 'acme collector' }],
    },
    {
      ref: 'B',
      name: 'Bravo Net',
      slug: 'bravo',
      users: [u('bob')],
      devices: [{ ref: 'cpe9', oui: '00D09E', productClass: 'HG8245', serialNumber: 'BRAVO0009' }],
      collectorTokens: [{ ref: 'bravo', name: 'bravo collector' }],
    },
  ],
};

/**
 * The operator console in a real headless Chromium (Debian's, driven by playwright-core): sign in, see the
 * current alarms, get new ones live, see clears and acknowledge; a user of another tenant sees none of it.
 */
describe('operator console in Chromium', () => {
  let prisma: PrismaClient;
  let stack: Stack;
  let world: ProvisionResult;
  let browser: Browser;
  let dropDb: () => Promise<void>;

  const raise = async (collector: string, device: string, over: Record<string, unknown> = {}) => {
    const res = await fetch(`${stack.ingest.url}/v1/alarms`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${world.collectorTokens[collector]!.token}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify({
        deviceId: world.devices[device]!.id,
        alarmIdentifier: 'wan-down',
        eventType: 'Communications Alarm',
        probableCause: 'Loss of signal',
        specificProblem: 'WAN link down',
        perceivedSeverity: 'Major',
        ...over,
      }),
    });
    expect(res.status).toBeLessThan(300);
    return ((await res.json()) as { id: string }).id;
  };

  const signIn = async (user: string): Promise<Page> => {
    const page = await (await browser.newContext({ viewport: { width: 1200, height: 520 } })).newPage();
    await page.goto(`${stack.ingest.url}/console/`);
    await page.fill('#token', await signUserJwt(JWT_SECRET, world.users[user]!.id));
    await page.click('button[type=submit]');
    await page.waitForSelector('#connection[data-state=live]', { timeout: 10_000 });
    expect(await page.isVisible('#sign-in')).toBe(false);
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
    });
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await stack.close();
    await prisma.$disconnect();
    await dropDb();
  });

  it('shows existing alarms, new ones within a second, clears and acks, and nothing of another tenant', async () => {
    const existing = await raise('acme', 'cpe2', {
      alarmIdentifier: 'cpu-high',
      perceivedSeverity: 'Minor',
      specificProblem: 'CPU above 90%',
    });
    const alice = await signIn('alice');
    const bob = await signIn('bob');
    await alice.waitForSelector(`tr[data-alarm-id="${existing}"]`);

    // Keyboard focus on an Acknowledge button survives live updates of the list around it.
    const existingAck = alice.locator(`tr[data-alarm-id="${existing}"] button`);
    await existingAck.focus();

    // A new alarm appears without reload, within a second of the POST.
    const posted = Date.now();
    const fresh = await raise('acme', 'cpe1', {
      perceivedSeverity: 'Critical',
      specificProblem: 'WAN link down',
    });
    await alice.waitForSelector(`tr[data-alarm-id="${fresh}"]`, { timeout: 1000 });
    const elapsed = Date.now() - posted;
    expect(elapsed).toBeLessThan(1000);
    // Sorted by severity: the Critical one first.
    expect(await alice.locator('tbody tr').first().getAttribute('data-alarm-id')).toBe(fresh);

    // Bob (other tenant) sees his own alarm arrive, and still nothing of Acme's.
    const bobs = await raise('bravo', 'cpe9', { alarmIdentifier: 'power', specificProblem: 'On battery' });
    await bob.waitForSelector(`tr[data-alarm-id="${bobs}"]`);
    expect(await bob.locator('tbody tr').count()).toBe(1);
    expect(await alice.locator(`tr[data-alarm-id="${bobs}"]`).count()).toBe(0);

    // Acknowledge from the page (by keyboard, on the button still focused); clear from the collector: both
    // show without reload.
    expect(await existingAck.evaluate((button) => button === document.activeElement)).toBe(true);
    await alice.keyboard.press('Enter');
    await alice.waitForSelector(`tr[data-alarm-id="${existing}"] .state:text("acknowledged")`);
    await raise('acme', 'cpe1', { perceivedSeverity: 'Cleared' });
    await alice.waitForSelector(`tr[data-alarm-id="${fresh}"].cleared`);

    // A reload rebuilds the same state from the API.
    await alice.reload();
    await alice.waitForSelector('#connection[data-state=live]');
    await alice.waitForSelector(`tr[data-alarm-id="${fresh}"].cleared`);
    await alice.waitForSelector(`tr[data-alarm-id="${existing}"] .state:text("acknowledged")`);

    // One more live alarm so the screenshot shows every state.
    const third = await raise('acme', 'cpe2', {
      alarmIdentifier: 'optical-rx',
      perceivedSeverity: 'Major',
      specificProblem: 'Optical RX power low',
      additionalText: 'RX -27.9 dBm',
      additionalInformation: 'threshold=-27 dBm; port=PON1',
    });
    // Additional text and information are shown with the alarm.
    await alice.waitForSelector(
      `tr[data-alarm-id="${third}"] .info:text("RX -27.9 dBm · threshold=-27 dBm; port=PON1")`,
    );
    await mkdir(fileURLToPath(new URL('../../../docs/', import.meta.url)), { recursive: true });
    await alice.screenshot({ path: SCREENSHOT });
  });
});
