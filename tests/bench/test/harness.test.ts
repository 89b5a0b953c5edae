/**
 * The harness must be able to tell a good run from a bad one: the lean client has to see exactly what
 * pusher-js sees, and the accounting has to catch a missing, a duplicated and a misdirected delivery.
 * Real services as processes, real Postgres and Redis (the benchmark's own databases on the test server).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testEnv } from '@alarmcast/testing';
import { provisionWorld, type BenchWorld } from '../src/bench-world.js';
import type { BenchSocket } from '../src/delivery.js';
import { connectAll, runLoad, type DeliverySink } from '../src/load.js';
import { equivalence } from '../src/scenarios.js';
import { startSystem, type SystemUnderTest } from '../src/stacks.js';

beforeAll(() => {
  process.env.DATABASE_ADMIN_URL = testEnv().postgresAdminUrl;
  process.env.REDIS_URL = testEnv().redisUrl;
});

describe('benchmark harness', () => {
  it('the lean client receives the same frames as pusher-js, in the same order', async () => {
    const r = await equivalence({ quick: true, rounds: 1, peer: false });
    expect(r.usersWithDifferentFrames).toEqual([]);
    expect(r.framesPerClient).toBeGreaterThan(100);
    expect(r.lean.exact).toBe(true);
    expect(r.floors.every((f) => f.met)).toBe(true);
  }, 120_000);

  describe('accounting', () => {
    let world: BenchWorld;
    let system: SystemUnderTest;
    let sockets: BenchSocket[];
    let sink: DeliverySink = () => {};

    beforeAll(async () => {
      // Two tenants of three users, two devices each, no shares: tenant 1 is users 1-3, tenant 2 users 4-6.
      world = await provisionWorld('alarmcast_bench_harness_test', {
        tenants: 2,
        usersPerTenant: 3,
        devicesPerTenant: 2,
        shareEveryNthUser: 0,
        sharesPerSharer: 0,
      });
      system = await startSystem('alarmcast', world.databaseUrl);
      sockets = await connectAll(system.connect, world.userIds, (u, d) => sink(u, d));
    }, 120_000);

    afterAll(async () => {
      for (const s of sockets ?? []) s.close();
      await system?.close();
    });

    it('counts deliveries dropped, doubled and sent to someone else', async () => {
      const [u1, u2, , u4] = world.userIds as [number, number, number, number];
      const result = await runLoad({
        label: 'accounting',
        world,
        ingestUrl: system.ingestUrl,
        ratePerS: 20,
        durationS: 1,
        warmupS: 0,
        drainS: 3,
        // Tamper with what the sockets report: u1 loses everything, u2 gets each twice, and u2's also
        // shows up at u4, a user of the other tenant.
        attach: (run) => {
          sink = (userId, d) => {
            if (userId === u1) return;
            run(userId, d);
            if (userId === u2) {
              run(userId, d);
              run(u4, d);
            }
          };
        },
      });
      // 20 alarms on the 4 devices in turn: 10 on tenant 1's two devices, each owed to its 3 users.
      const tenant1Alarms = 10;
      expect(result.alarmsAcked).toBe(20);
      expect(result.deliveries).toEqual({
        expected: 20 * 3,
        received: 20 * 3 - tenant1Alarms,
        missing: tenant1Alarms,
        duplicates: tenant1Alarms,
        unexpected: tenant1Alarms,
      });
      expect(result.exact).toBe(false);
    }, 60_000);

    it('posts through the batch endpoint (storm, capacity --batch): each alarm acked by its item', async () => {
      const result = await runLoad({
        label: 'batch accounting',
        world,
        ingestUrl: system.ingestUrl,
        ratePerS: 20,
        durationS: 1,
        warmupS: 0,
        drainS: 5,
        batch: 6,
        attach: (run) => (sink = run),
      });
      // 20 alarms in requests of 6, 6, 6 and 2, each owed to its device tenant's 3 users.
      expect(result.alarmsAcked).toBe(20);
      expect(result.postFailures).toEqual({});
      expect(result.deliveries).toEqual({
        expected: 60,
        received: 60,
        missing: 0,
        duplicates: 0,
        unexpected: 0,
      });
      expect(result.exact).toBe(true);
      expect(result.firstPostToLastDeliveryMs).toBeGreaterThan(0);
      expect(result.firstPostToLastDeliveryMs).toBeLessThan(5000);
    }, 60_000);
  });
});
