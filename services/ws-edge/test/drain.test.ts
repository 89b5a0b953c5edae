import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createEdgeWorld, metricValue, RawClient, type EdgeWorld } from './helpers.js';

/**
 * Draining spreads the 4200 closes over EDGE_DRAIN_SPREAD_S, so that a node leaving (scale-in, rollout)
 * does not send all its clients to the other nodes in one instant; with 0 they are closed at once.
 */
describe('drain', () => {
  let world: EdgeWorld;
  beforeAll(async () => {
    world = await createEdgeWorld();
  });
  afterEach(() => world.closeTracked());
  afterAll(() => world.teardown());

  async function drainTimes(spreadS: string): Promise<{ times: number[]; codes: number[] }> {
    const edge = await world.startEdge({ EDGE_DRAIN_SPREAD_S: spreadS });
    const clients = await Promise.all(Array.from({ length: 20 }, () => RawClient.connect(world, edge)));
    await Promise.all(clients.map((c) => c.socketId()));
    const times: number[] = [];
    const codes: number[] = [];
    const start = Date.now();
    for (const c of clients)
      c.ws.on('close', (code) => {
        times.push(Date.now() - start);
        codes.push(code);
      });
    await edge.close();
    expect(await metricValue(edge, 'ws_edge_closes_total', { code: '4200' })).toBe(20);
    return { times: times.sort((a, b) => a - b), codes };
  }

  it('closes every socket with 4200 at once by default', async () => {
    const { times, codes } = await drainTimes('0');
    expect(codes).toEqual(Array(20).fill(4200));
    expect(times.at(-1)! - times[0]!).toBeLessThan(500);
  });

  it('spreads the closes evenly over EDGE_DRAIN_SPREAD_S', async () => {
    const { times, codes } = await drainTimes('2');
    expect(codes).toEqual(Array(20).fill(4200));
    // 20 sockets over 2 s: the last close comes ~1.9 s after the first, and no more than a few per 100 ms.
    expect(times.at(-1)! - times[0]!).toBeGreaterThan(1500);
    expect(times.filter((t) => t - times[0]! < 500).length).toBeLessThan(10);
  });
});
