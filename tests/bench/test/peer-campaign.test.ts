/**
 * The Socket.IO peer's side of the `campaign` scenario: campaign rooms joined by `watchCampaign` (members of
 * the campaign's tenant only) and the state bridge re-emitting what the shared ingest publishes on device and
 * campaign channels to their rooms. Real ingest, Postgres and Redis.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { generateCollectorToken, hashCollectorToken, signUserJwt } from '@alarmcast/auth';
import type { ProvisionResult } from '@alarmcast/contracts';
import { createPrismaClient, provisionGraph } from '@alarmcast/db';
import { createTestDatabase, testEnv, uniqueRedisPrefix } from '@alarmcast/testing';
import { APP, JWT_SECRET } from '@alarmcast/e2e/stack';
import { freePort, spawnService, stopService, type SpawnedService } from '@alarmcast/e2e/spawned-stack';
import { socketIoCampaignWatcher, type CampaignFrame } from '../src/campaign-watchers.js';

const u = (ref: string) => ({ ref, email: `${ref}@example.test`, name: ref, active: true });
const d = (ref: string) => ({ ref, oui: '00D09E', productClass: 'HG8245', serialNumber: ref });
const graph = {
  tenants: [
    {
      ref: 'A',
      name: 'Tenant A',
      slug: 'tenant-a',
      users: [u('a1'), u('a2')],
      devices: [d('da1'), d('da2')],
      collectorTokens: [{ ref: 'acs', name: 'acs', scopes: ['tasks' as const, 'campaigns' as const] }],
    },
    {
      ref: 'B',
      name: 'Tenant B',
      slug: 'tenant-b',
      users: [u('b1')],
      devices: [d('db1')],
      collectorTokens: [],
    },
  ],
  shares: [],
};

describe('Socket.IO peer: campaign rooms and the state bridge', () => {
  const services: SpawnedService[] = [];
  const closers: { close: () => void }[] = [];
  let world: ProvisionResult;
  let ingest: SpawnedService;
  let peer: SpawnedService;
  let dropDb: () => Promise<void>;

  beforeAll(async () => {
    const db = await createTestDatabase(testEnv().postgresAdminUrl, testEnv().postgresTemplate);
    dropDb = db.drop;
    const prisma = createPrismaClient(db.url);
    world = await provisionGraph(prisma, graph, {
      hashToken: hashCollectorToken,
      newToken: generateCollectorToken,
    });
    await prisma.$disconnect();
    const common = {
      NODE_ENV: 'development',
      DATABASE_URL: db.url,
      REDIS_URL: testEnv().redisUrl,
      REDIS_PREFIX: uniqueRedisPrefix(),
      LOG_LEVEL: 'warn',
      JWT_SECRET,
    };
    const [peerPort, bridgePort, ingestPort] = await Promise.all([freePort(), freePort(), freePort()]);
    const spawned = await Promise.all([
      spawnService(
        'socketio-server',
        'tests/bench/src/peer/socketio-server.ts',
        { ...common, PEER_PORT: String(peerPort) },
        peerPort,
      ),
      spawnService(
        'socketio-state-bridge',
        'tests/bench/src/peer/socketio-state-bridge.ts',
        { ...common, BRIDGE_PORT: String(bridgePort) },
        bridgePort,
      ),
      spawnService(
        'alarm-ingest',
        'services/alarm-ingest/src/main.ts',
        { ...common, INGEST_PORT: String(ingestPort), PUSHER_APP_KEY: APP.key },
        ingestPort,
      ),
    ]);
    services.push(...spawned);
    [peer, , ingest] = spawned as [SpawnedService, SpawnedService, SpawnedService];
  });

  afterAll(async () => {
    for (const c of closers) c.close();
    await Promise.all(services.map((s) => stopService(s)));
    await dropDb?.();
  });

  const send = async (method: string, path: string, body: unknown) => {
    const res = await fetch(`${ingest.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${world.collectorTokens.acs!.token}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify(body),
    });
    return res.status;
  };

  it('lets only the campaign tenant’s members watch it, and carries its task and progress events', async () => {
    const connect = socketIoCampaignWatcher(peer.url);
    const device = world.devices.da1!.id;
    expect(
      await send('POST', '/v1/campaigns', {
        campaignId: 'peer-fw',
        tenantId: world.tenants.A!.id,
        name: 'peer test',
        targetVersion: '2.0.0',
        deviceIds: [device, world.devices.da2!.id],
      }),
    ).toBe(201);
    const jwt = async (ref: string) => signUserJwt(JWT_SECRET, world.users[ref]!.id);
    const never = () => expect.fail('a refused watcher gets nothing');
    await expect(
      connect(world.users.b1!.id, await jwt('b1'), { campaign: 'peer-fw' }, never),
    ).rejects.toThrow('may not watchCampaign');
    await expect(
      connect(world.users.a1!.id, await jwt('a1'), { campaign: 'no-such' }, never),
    ).rejects.toThrow('may not watchCampaign');
    const onCampaign: CampaignFrame[] = [];
    const onDevice: CampaignFrame[] = [];
    closers.push(
      await connect(world.users.a1!.id, await jwt('a1'), { campaign: 'peer-fw' }, (f) => onCampaign.push(f)),
    );
    closers.push(
      await connect(world.users.a2!.id, await jwt('a2'), { devices: [device] }, (f) => onDevice.push(f)),
    );

    expect(
      await send('PUT', '/v1/tasks/peer-fw-1', {
        deviceId: device,
        kind: 'download',
        state: 'queued',
        campaignId: 'peer-fw',
      }),
    ).toBe(201);
    await vi.waitFor(() => {
      expect(onDevice.map((f) => f.event)).toContain('App\\Events\\DeviceTaskUpdated');
      expect(onCampaign.map((f) => f.event).sort()).toEqual([
        'App\\Events\\DeviceTaskUpdated',
        'App\\Events\\FirmwareCampaignProgress',
      ]);
    });
    const progress = onCampaign.find((f) => f.event === 'App\\Events\\FirmwareCampaignProgress')!.data() as {
      campaign: { counts: Record<string, number> };
    };
    expect(progress.campaign.counts).toMatchObject({ pending: 1, queued: 1 });
    expect((onDevice[0]!.data() as { task: { id: string } }).task.id).toBe('peer-fw-1');
  });
});
