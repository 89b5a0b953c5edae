import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { generateCollectorToken, hashCollectorToken, signUserJwt } from '@alarmcast/auth';
import { campaignFailingAlarmIdentifier, type ProvisionResult } from '@alarmcast/contracts';
import { createPrismaClient, provisionGraph, type PrismaClient } from '@alarmcast/db';
import { createTestDatabase, testEnv, uniqueRedisPrefix } from '@alarmcast/testing';
import { launchChromium } from '../src/chromium.js';
import { JWT_SECRET, startStack, type Stack } from '../src/stack.js';

const u = (ref: string) => ({ ref, email: `${ref}@example.test`, name: ref });
const d = (ref: string) => ({ ref, oui: '00D09E', productClass: 'HG8245', serialNumber: ref.toUpperCase() });
const FLEET = ['f1', 'f2', 'f3', 'f4', 'f5'];
const graph = {
  tenants: [
    {
      ref: 'A',
      name: 'Acme ISP',
      slug: 'acme',
      users: [u('alice')],
      devices: [{ ...d('cpe'), name: 'Lobby router' }, d('attic'), ...FLEET.map(d)],
      collectorTokens: [{ ref: 'acs', name: 'acs', scopes: ['alarms', 'informs', 'tasks', 'campaigns'] }],
    },
  ],
};

/**
 * Task progress on the device panel and the Campaigns view in Chromium against the real services: a task
 * reported with PUT /v1/tasks moves its bar on the open panel within a second and shows its fault when it
 * fails; a campaign's counts, bar and failing devices move while its tasks are reported, and its threshold
 * alarm appears in the alarm list; the Devices view's presence badges follow a device going offline and back.
 */
describe('console tasks and campaigns in Chromium', () => {
  let prisma: PrismaClient;
  let stack: Stack;
  let world: ProvisionResult;
  let browser: Browser;
  let dropDb: () => Promise<void>;

  const send = async (method: string, path: string, body: unknown) => {
    const res = await fetch(`${stack.ingest.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${world.collectorTokens.acs!.token}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify(body),
    });
    expect(res.status, await res.clone().text()).toBeLessThan(300);
    return (await res.json()) as Record<string, unknown>;
  };
  const putTask = (taskId: string, device: string, body: Record<string, unknown>) =>
    send('PUT', `/v1/tasks/${taskId}`, { deviceId: world.devices[device]!.id, kind: 'download', ...body });

  const signIn = async (hash = ''): Promise<Page> => {
    const page = await (await browser.newContext({ viewport: { width: 1400, height: 800 } })).newPage();
    await page.goto(`${stack.ingest.url}/console/${hash}`);
    await page.fill('#token', await signUserJwt(JWT_SECRET, world.users.alice!.id));
    await page.click('button[type=submit]');
    await page.waitForSelector('#connection[data-state=live]', { timeout: 10_000 });
    return page;
  };
  const barValue = (page: Page, selector: string) =>
    page.$eval(selector, (el) => (el as HTMLProgressElement).value);

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
      // Short presence for the Devices view test: offline 1 × interval + 1 s after the last inform.
      env: { DEVICE_OFFLINE_INTERVALS: '1', DEVICE_OFFLINE_GRACE_S: '1', PRESENCE_SWEEP_INTERVAL_MS: '200' },
    });
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await stack?.close();
    await prisma?.$disconnect();
    await dropDb?.();
  });

  it('moves a task’s bar on the open device panel within a second, and shows the fault when it fails', async () => {
    const cpe = world.devices.cpe!.id;
    // An open task before the page opens: the channel's snapshot (and the API) show it.
    await putTask('reboot-1', 'cpe', { kind: 'reboot', state: 'dispatched', progress: 5 });
    const alice = await signIn(`#device=${cpe}`);
    const reboot = `#device-tasks li[data-task-id="reboot-1"]`;
    await alice.waitForSelector(reboot);
    expect(await alice.textContent(`${reboot} .task-kind`)).toBe('Reboot');
    expect(await barValue(alice, `${reboot} progress`)).toBe(5);

    await putTask('fw-1', 'cpe', { state: 'queued' });
    const bar = `#device-tasks li[data-task-id="fw-1"] progress`;
    await alice.waitForSelector(bar);
    expect(await barValue(alice, bar)).toBe(0);

    for (const [report, expected] of [
      [{ state: 'running', phase: 'downloading', progress: 40 }, 40],
      [{ state: 'running', phase: 'applying' }, 70],
    ] as const) {
      await putTask('fw-1', 'cpe', report);
      const reported = Date.now();
      await alice.waitForFunction(
        ([sel, want]) => (document.querySelector(sel) as HTMLProgressElement | null)?.value === want,
        [bar, expected] as const,
        { timeout: 1000 },
      );
      expect(Date.now() - reported).toBeLessThan(1000);
    }
    expect(await alice.textContent(`#device-tasks li[data-task-id="fw-1"] .task-status`)).toBe(
      'running · applying · 70 %',
    );

    // A TransferComplete fault: the task leaves the open list and is listed finished, with its fault.
    await putTask('fw-1', 'cpe', { state: 'failed', faultCode: 9010, faultString: 'Download failure' });
    const failed = `#device-tasks-finished li[data-task-id="fw-1"][data-state=failed]`;
    await alice.waitForSelector(failed, { timeout: 1000 });
    expect(await alice.textContent(`${failed} .task-fault`)).toBe('fault 9010: Download failure');
    expect(await alice.$(`#device-tasks li[data-task-id="fw-1"]`)).toBeNull();
    // The reboot ends too: no open task left.
    await putTask('reboot-1', 'cpe', { kind: 'reboot', state: 'succeeded' });
    await alice.waitForSelector('#device-tasks-empty:not([hidden])', { timeout: 1000 });
    await alice.waitForSelector(`#device-tasks-finished li[data-task-id="reboot-1"][data-state=succeeded]`);
  });

  it('moves a campaign’s counts, bar and failing devices while its tasks are reported; its threshold alarm appears', async () => {
    const campaignId = 'fw-e2e';
    await send('POST', '/v1/campaigns', {
      campaignId,
      tenantId: world.tenants.A!.id,
      name: 'HG8245 to 2.0.1',
      targetVersion: '2.0.1',
      deviceIds: FLEET.map((f) => world.devices[f]!.id),
      // 5 devices: the minimum sample is min(20, 5); 2 failed of 5 is 40 %
      failureThresholdPercent: 20,
    });
    const alice = await signIn();
    await alice.click('#show-campaigns');
    await alice.fill('#campaign-id', campaignId);
    await alice.click('#campaign-open button[type=submit]');
    const detail = `#campaign-detail[data-campaign-id="${campaignId}"]`;
    await alice.waitForSelector(`${detail}:not([data-state=loading])`);
    expect(alice.url()).toContain(`#campaign=${campaignId}`);
    expect(await alice.textContent('#campaign-title')).toBe('HG8245 to 2.0.1');
    expect(await alice.textContent('#campaign-state')).toBe('running');
    expect(await alice.textContent('#campaign-count-pending')).toBe('5');
    expect(await barValue(alice, '#campaign-bar')).toBe(0);

    const count = (state: string, n: number) =>
      alice.waitForSelector(`#campaign-count-${state}:text-is("${n}")`, { timeout: 5000 });
    const task = (i: number, body: Record<string, unknown>) =>
      putTask(`c-${FLEET[i]}`, FLEET[i]!, { campaignId, ...body });

    // Counts move while tasks are reported (progress goes out at most once a second per campaign).
    for (let i = 0; i < 5; i++) await task(i, { state: 'running', phase: 'downloading' });
    await count('running', 5);
    await count('pending', 0);
    // The tenant's channel carries the same progress: the campaign is listed.
    await alice.waitForSelector(`#campaign-rows tr[data-campaign-id="${campaignId}"]`);

    await task(0, { state: 'failed', faultCode: 9011, faultString: 'Upgrade failed' });
    await task(1, { state: 'succeeded' });
    await count('failed', 1);
    await count('succeeded', 1);
    await alice.waitForFunction(
      () => (document.getElementById('campaign-bar') as HTMLProgressElement).value === 2,
    );
    // The failing device, from the campaign channel's per-device change, with its fault.
    const f1 = world.devices.f1!.id;
    await alice.waitForSelector(
      `#campaign-failing tr[data-device-id="${f1}"]:has-text("fault 9011: Upgrade failed")`,
    );

    await task(2, { state: 'failed', faultCode: 9010 });
    await task(3, { state: 'succeeded' });
    await task(4, { state: 'succeeded' });
    await count('succeeded', 3);
    await count('failed', 2);
    expect(await alice.textContent('#campaign-percent')).toBe('5 of 5 finished (100 %)');
    await alice.waitForSelector(`#campaign-failing tr[data-device-id="${world.devices.f3!.id}"]`);
    expect(await alice.$$eval('#campaign-failing tr', (rows) => rows.length)).toBe(2);
    // 2 of 5 failed passes 20 %: the threshold alarm is in the alarm list, and the campaign says so.
    await alice.click('#show-alarms');
    await alice.waitForSelector(
      `#alarms tbody tr.active:has-text("${campaignFailingAlarmIdentifier(campaignId)}")`,
      { timeout: 10_000 },
    );
    await alice.click('#show-campaigns');
    await alice.waitForSelector('#campaign-failing-flag:not([hidden])', { timeout: 5000 });

    // A new page lists the campaign from GET /v1/campaigns, with another one that never moved.
    await send('POST', '/v1/campaigns', {
      campaignId: 'fw-quiet',
      tenantId: world.tenants.A!.id,
      name: 'never reported',
      targetVersion: '2.0.2',
      deviceIds: [world.devices[FLEET[0]!]!.id],
    });
    const again = await signIn(`#campaign=${campaignId}`);
    await again.waitForSelector('#campaign-rows tr:has-text("never reported")');
    await again.waitForSelector('#campaign-rows tr:has-text("HG8245 to 2.0.1")');
    // ...and, opened at the campaign's address, the same campaign from the API and the channel's snapshot.
    await again.waitForSelector(`${detail}:not([data-state=loading])`);
    await again.waitForSelector('#campaign-count-failed:text-is("2")');
    expect(await again.$$eval('#campaign-failing tr', (rows) => rows.length)).toBe(2);

    // Aborted: the state moves live and the alarm clears.
    await send('PATCH', `/v1/campaigns/${campaignId}`, { state: 'aborted' });
    await again.waitForSelector('#campaign-state:text-is("aborted")', { timeout: 5000 });
    await alice.click('#show-alarms');
    await alice.waitForSelector(
      `#alarms tbody tr.cleared:has-text("${campaignFailingAlarmIdentifier(campaignId)}")`,
      { timeout: 10_000 },
    );
  });

  it('shows presence changes live in the Devices view, without Refresh', async () => {
    const attic = world.devices.attic!.id;
    const inform = (interval: number) =>
      send('POST', '/v1/devices/informs', {
        informs: [
          {
            deviceId: attic,
            informedAt: new Date().toISOString(),
            eventCodes: ['1 BOOT'],
            periodicInformInterval: interval,
          },
        ],
      });
    await inform(300);
    const alice = await signIn();
    await alice.click('#show-devices');
    const badge = `#device-rows tr[data-device-id="${attic}"] .presence-badge`;
    await alice.waitForSelector(`${badge}[data-online=true]`);
    // A 2 s interval, then silence: offline after 1 × 2 s + 1 s, through the offline alarm.
    await inform(2);
    await alice.waitForSelector(`${badge}[data-online=false]`, { timeout: 10_000 });
    expect(await alice.textContent(badge)).toBe('offline');
    await inform(300);
    await alice.waitForSelector(`${badge}[data-online=true]`, { timeout: 10_000 });
  });
});
