import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import pg from 'pg';
import { WIRE_EVENTS, campaignChannel } from '@alarmcast/contracts';
import type { EdgeServer } from '../src/server.js';
import { createEdgeWorld, publish, pusherClient, type EdgeWorld, type Pusher } from './helpers.js';

/**
 * `private-campaign.{id}` with real pusher-js clients on two edges: only the active members of the
 * campaign's tenant may subscribe (another tenant, an unknown campaign, an inactive user, a platform user
 * are refused), live events reach the subscribers, and a member moved to another tenant or deactivated
 * loses the subscription at once, whichever edge authorized it.
 */
describe('private-campaign channels', () => {
  let world: EdgeWorld;
  let edges: [EdgeServer, EdgeServer];
  let sql: pg.Client;

  beforeAll(async () => {
    world = await createEdgeWorld();
    const limitsOff = {
      RATE_LIMIT_CHANNEL_AUTH_PER_USER: '0',
      RATE_LIMIT_CHANNEL_AUTH_PER_IP: '0',
      RATE_LIMIT_AUTH_FAILURES_PER_IP: '0',
    };
    edges = await Promise.all([world.startSharedEdge(limitsOff), world.startSharedEdge(limitsOff)]);
    sql = new pg.Client({ connectionString: world.config().databaseUrl });
    await sql.connect();
    await vi.waitFor(() => expect(edges.every((e) => e.listeningForAccessChanges)).toBe(true));
  });
  afterEach(() => world.closeTracked());
  afterAll(async () => {
    await sql?.end();
    await world.teardown();
  });

  const rand = () => Math.random().toString(36).slice(2, 10);
  const makeTenant = () => world.prisma.tenant.create({ data: { name: 't', slug: `t-${rand()}` } });
  const makeUser = (tenantId: number | null, active = true) =>
    world.prisma.user.create({ data: { tenantId, name: 'u', email: `u-${rand()}@example.test`, active } });
  const makeCampaign = (id: string, tenantId: number) =>
    world.prisma.firmwareCampaign.create({
      data: { id, tenantId, name: id, targetVersion: '2.0', deviceCount: 0 },
    });

  function watch(edge: EdgeServer, jwt: string, channelName: string) {
    const pusher: Pusher = world.track(pusherClient(edge, world.config().app.key, jwt), (p) =>
      p.disconnect(),
    );
    const seen: { event: string; data: unknown }[] = [];
    const state = { subscribed: 0, error: null as unknown };
    const channel = pusher.subscribe(channelName);
    channel.bind('pusher:subscription_succeeded', () => (state.subscribed += 1));
    channel.bind('pusher:subscription_error', (e: unknown) => (state.error = e));
    channel.bind_global((event: string, data: unknown) => {
      if (!event.startsWith('pusher')) seen.push({ event, data });
    });
    return { seen, state };
  }

  it('lets the campaign tenant’s active members subscribe and refuses everyone else', async () => {
    const [home, other] = [await makeTenant(), await makeTenant()];
    const id = `c-${rand()}`;
    await makeCampaign(id, home.id);
    const member = await makeUser(home.id);
    const outsider = await makeUser(other.id);
    const inactive = await makeUser(home.id, false);
    const platform = await makeUser(null);

    const ok = watch(edges[0], await world.jwt(member.id), campaignChannel(id));
    const refused = await Promise.all(
      [outsider, inactive, platform].map(async (u, i) =>
        watch(edges[i % 2]!, await world.jwt(u.id), campaignChannel(id)),
      ),
    );
    const unknown = watch(edges[1], await world.jwt(member.id), campaignChannel(`nope-${rand()}`));
    await vi.waitFor(() => {
      expect(ok.state.subscribed).toBe(1);
      for (const w of [...refused, unknown]) expect(w.state.error).toMatchObject({ status: 403 });
    });

    const data = JSON.stringify({ campaign: { id, counts: { pending: 1 } } });
    await publish(world, campaignChannel(id), WIRE_EVENTS.firmwareCampaignProgress, data);
    await vi.waitFor(() => expect(ok.seen).toHaveLength(1));
    expect(ok.seen[0]).toEqual({ event: WIRE_EVENTS.firmwareCampaignProgress, data: JSON.parse(data) });
    for (const w of refused) expect(w.seen).toEqual([]);
  });

  it('ends a campaign subscription when its user moves to another tenant or is deactivated', async () => {
    const [home, away] = [await makeTenant(), await makeTenant()];
    const id = `c-${rand()}`;
    await makeCampaign(id, home.id);
    const mover = await makeUser(home.id);
    const leaver = await makeUser(home.id);
    const stayer = await makeUser(home.id);
    const mv = watch(edges[0], await world.jwt(mover.id), campaignChannel(id));
    const lv = watch(edges[1], await world.jwt(leaver.id), campaignChannel(id));
    const st = watch(edges[1], await world.jwt(stayer.id), campaignChannel(id));
    await vi.waitFor(() => expect([mv, lv, st].every((w) => w.state.subscribed === 1)).toBe(true));

    // Made directly in SQL, as the platform's own application would.
    await sql.query('UPDATE users SET tenant_id = $1 WHERE id = $2', [away.id, mover.id]);
    await sql.query('UPDATE users SET active = false WHERE id = $1', [leaver.id]);
    await vi.waitFor(() => expect(mv.state.error).toMatchObject({ status: 403 }), { timeout: 5000 });
    await new Promise((r) => setTimeout(r, 300));
    await publish(world, campaignChannel(id), WIRE_EVENTS.firmwareCampaignProgress, '{"campaign":{}}');
    await vi.waitFor(() => expect(st.seen).toHaveLength(1));
    expect(mv.seen).toEqual([]);
    expect(lv.seen).toEqual([]);
  });
});
