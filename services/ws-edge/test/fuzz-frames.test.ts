import { createHash, createHmac } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import fc from 'fast-check';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { signChannelAuth } from '@alarmcast/auth';
import { tenantChannel, userChannel } from '@alarmcast/contracts';
import { PUSHER_CODES } from '../src/close-codes.js';
import type { EdgeServer } from '../src/server.js';
import {
  connectedSocketId,
  createEdgeWorld,
  provisionTenant,
  publish,
  pusherClient,
  type EdgeWorld,
  type Pusher,
} from './helpers.js';

/**
 * Bad frames against a real edge ("Nothing lost"): thousands of generated frames on raw sockets while a
 * pusher-js client keeps its subscription. Deterministic: FUZZ_SEED reproduces a run. Every frame has an
 * expected answer (an error code, a pong, or nothing) derived from the Pusher protocol as the edge documents
 * it; a socket's answers must match its frames one for one, in order.
 */
const SEED = Number(process.env.FUZZ_SEED ?? 0xf4a3e5);
const SOCKETS = 6;
const FRAMES_PER_SOCKET = 1000;
const FLOOD = 2000;
const LEGIT_FLOOD = 300;
const HEAP_BOUND_BYTES = 50 * 1024 * 1024;
const PROBE = 'fuzz-probe';

function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `global.gc`, or one obtained through V8's flag when vitest's worker was not started with --expose-gc. */
function gcFunction(): (() => void) | null {
  const existing = (globalThis as { gc?: () => void }).gc;
  if (typeof existing === 'function') return existing;
  try {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as unknown;
    return typeof gc === 'function' ? (gc as () => void) : null;
  } catch {
    return null;
  }
}

/** What the edge must answer to one frame: a `pusher:error` code, a pong, or nothing. */
type Expect = number | 'pong' | null;
interface Shot {
  label: string;
  data: string | Buffer;
  binary?: boolean;
  expect: Expect;
}

const PUSHER_CODE_SET = new Set<number>(Object.values(PUSHER_CODES));

/** A raw socket that keeps every server frame as text, for checking that each one is a valid Pusher frame. */
class FuzzSocket {
  readonly texts: string[] = [];
  binaryFrames = 0;
  closed: { code: number; reason: string } | null = null;
  socketId = '';
  sent = 0;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data, isBinary) => {
      if (isBinary) this.binaryFrames++;
      else this.texts.push(String(data));
    });
    ws.on('close', (code, reason) => (this.closed = { code, reason: reason.toString() }));
    ws.on('error', () => undefined);
  }

  static async open(world: EdgeWorld, edge: EdgeServer): Promise<FuzzSocket> {
    const ws = new WebSocket(`${edge.url.replace(/^http/, 'ws')}/app/${world.config().app.key}?protocol=7`);
    const socket = world.track(new FuzzSocket(ws), (s) => s.ws.terminate());
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const established = await vi.waitFor(
      () => {
        const first = socket.texts[0];
        if (!first) throw new Error('no connection_established yet');
        return JSON.parse(first) as { event: string; data: string };
      },
      { timeout: 10_000, interval: 10 },
    );
    socket.socketId = (JSON.parse(established.data) as { socket_id: string }).socket_id;
    return socket;
  }

  send(shot: Shot): void {
    this.sent++;
    this.ws.send(shot.data, { binary: shot.binary ?? false });
  }

  /** Frames as parsed objects; a frame that is not a JSON object with a string event is reported. */
  frames(): { event: string; channel?: unknown; data?: unknown }[] {
    return this.texts.map((t) => JSON.parse(t) as { event: string; channel?: unknown; data?: unknown });
  }

  pongs(): number {
    return this.texts.filter((t) => t.includes('"pusher:pong"')).length;
  }
}

describe('ws-edge under fuzzed frames', () => {
  let world: EdgeWorld;
  let edge: EdgeServer;
  let ana: number;
  let tenant: number;
  let healthy: Pusher;
  const received: number[] = [];
  const rand = prng(SEED);
  const int = (n: number): number => Math.floor(rand() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;

  beforeAll(async () => {
    world = await createEdgeWorld();
    const t = await provisionTenant(world.prisma, 'a', [{ name: 'ana' }]);
    [ana] = t.userIds as [number];
    tenant = t.tenantId;
    edge = await world.startSharedEdge();
    healthy = world.track(pusherClient(edge, world.config().app.key, await world.jwt(ana)), (p) =>
      p.disconnect(),
    );
    await connectedSocketId(healthy);
    const channel = healthy.subscribe(userChannel(ana));
    await new Promise<void>((resolve) => channel.bind('pusher:subscription_succeeded', () => resolve()));
    channel.bind(PROBE, (data: { n: number }) => received.push(data.n));
  });
  afterAll(() => world?.teardown());

  // ---- frame generators ----
  const jsonValues = (): unknown[] => [
    null,
    true,
    false,
    0,
    -1,
    1.5e308,
    '',
    'str',
    '\ud800',
    [],
    [1, 'a', null],
    {},
    { channel: 1 },
    { nested: { deeper: [{}] } },
  ];
  const randomText = (n: number): string =>
    Array.from({ length: n }, () =>
      rand() < 0.8 ? String.fromCharCode(0x20 + int(0x5f)) : String.fromCodePoint(0xa0 + int(0x2000)),
    ).join('');
  const frame = (v: unknown): string => JSON.stringify(v);
  const padded = (bytes: number): string => {
    const base = frame({ event: 'fuzz-ignored', data: '' });
    return frame({ event: 'fuzz-ignored', data: 'x'.repeat(bytes - base.length) });
  };

  const BAD_NAMES = [
    '',
    ' ',
    'private-user.1 ',
    'private-user/1',
    'private-user.*',
    'private-user.#',
    'private-\u00e9',
    'private-user.\u0661',
    'private-user.1\u0000',
    'x'.repeat(201),
    'private-user.' + '1'.repeat(190),
  ];
  const REFUSED_NAMES = (): string[] => [
    'public',
    'cache-alarms',
    'presence-tenant.1',
    'private-',
    'private-foo',
    'private-user.',
    'private-user.0',
    'private-user.01',
    'private-user.-1',
    'private-user.2147483648',
    'private-user.1.2',
    'private-encrypted-user.1',
    'Private-user.1',
    'private-tenant.x',
    'private-user.' + '1'.repeat(187),
    `private-user.${ana}`,
    `private-tenant.${tenant}`,
  ];

  /** Forged `auth` values for `channel` on the socket `sid`: none of them is that socket's signature. */
  const forgedAuth = (sid: string, channel: string): string | undefined => {
    const { key, secret } = world.config().app;
    const hex64 = () => Array.from({ length: 64 }, () => '0123456789abcdef'[int(16)]).join('');
    const valid = signChannelAuth(key, secret, sid, channel);
    return pick([
      () => undefined,
      () => '',
      () => ':',
      () => key,
      () => `${key}:${hex64()}`,
      () => `${key}:`,
      () => signChannelAuth(key, secret, '1.1', channel),
      () => signChannelAuth(key, 'not-the-secret', sid, channel),
      () => signChannelAuth(key, secret, sid, `${channel}0`),
      () => signChannelAuth('other-key', secret, sid, channel),
      () => valid.toUpperCase(),
      () => `${valid} `,
      () => ` ${valid}`,
      () => valid.slice(0, -1),
      () => `${valid}0`,
      () => valid.replace(':', '::'),
    ])();
  };

  function generators(sid: string): (() => Shot)[] {
    return [
      () => ({
        label: 'random bytes (binary)',
        data: Buffer.from(Array.from({ length: int(200) }, () => int(256))),
        binary: true,
        expect: PUSHER_CODES.reconnect,
      }),
      () => ({
        label: 'invalid JSON',
        data:
          pick(['{', '{"event":', '}', '[', 'undefined', "{'event':'x'}", '{"event":"x",}', 'NaN', '']) +
          (rand() < 0.5 ? '' : `#${randomText(int(30))}`),
        expect: PUSHER_CODES.reconnect,
      }),
      () => ({
        label: 'JSON of the wrong shape',
        data: frame(pick(jsonValues())),
        expect: PUSHER_CODES.reconnect,
      }),
      () => ({
        label: 'bad envelope',
        data: frame(
          pick([
            { data: {} },
            { event: 123 },
            { event: null },
            { event: '' },
            { event: ['pusher:ping'] },
            { event: 'x'.repeat(201) },
            { event: 'hello', channel: 5 },
            { event: 'hello', channel: 'x'.repeat(201) },
            { event: 'client-x', channel: {} },
          ]),
        ),
        expect: PUSHER_CODES.reconnect,
      }),
      () => ({
        label: 'unknown pusher event',
        data: frame({
          event: pick([
            'pusher:',
            'pusher:SUBSCRIBE',
            'pusher:subscribe ',
            'pusher:bogus',
            `pusher:${randomText(10)}`,
          ]),
          data: pick(jsonValues()),
        }),
        expect: PUSHER_CODES.reconnect,
      }),
      () => ({
        label: 'ignored event',
        data: frame({
          event: pick([
            'hello',
            'pusher_internal:subscription_succeeded',
            'pusher_internal:member_added',
            'App\\Events\\AlarmCreated',
            PROBE,
            'Pusher:ping',
            `x${randomText(20)}`,
          ]),
          channel: pick([undefined, userChannel(ana), 'anything']),
          data: pick(jsonValues()),
        }),
        expect: null,
      }),
      () => ({
        label: 'ping',
        data: frame({ event: 'pusher:ping', data: pick(jsonValues()) }),
        expect: 'pong',
      }),
      () => ({
        label: 'pong',
        data: frame({ event: 'pusher:pong', data: pick(jsonValues()) }),
        expect: null,
      }),
      () => ({
        label: 'subscribe with non-object data',
        data: frame({
          event: 'pusher:subscribe',
          data: pick(jsonValues().filter((v) => typeof v !== 'object' || v === null || Array.isArray(v))),
        }),
        expect: PUSHER_CODES.reconnect,
      }),
      () => ({
        label: 'subscribe to a malformed channel name',
        data: frame({ event: 'pusher:subscribe', data: { channel: pick([...BAD_NAMES, 5, null, {}, []]) } }),
        expect: PUSHER_CODES.reconnect,
      }),
      () => {
        const channel = pick(REFUSED_NAMES());
        return {
          label: `subscribe to ${channel.slice(0, 40)} with forged auth`,
          data: frame({ event: 'pusher:subscribe', data: { channel, auth: forgedAuth(sid, channel) } }),
          expect: PUSHER_CODES.unauthorized,
        };
      },
      () => {
        const channel = pick([userChannel(ana), tenantChannel(tenant), userChannel(1 + int(2 ** 31 - 2))]);
        return {
          label: 'subscribe with an auth of the wrong type or size',
          data: frame({
            event: 'pusher:subscribe',
            data: { channel, auth: pick([5, null, {}, ['a'], 'a'.repeat(513)]) },
          }),
          expect: PUSHER_CODES.reconnect,
        };
      },
      () => ({
        label: 'unsubscribe garbage',
        data: frame({ event: 'pusher:unsubscribe', data: pick([null, 5, {}, { channel: pick(BAD_NAMES) }]) }),
        expect: PUSHER_CODES.reconnect,
      }),
      () => ({
        label: 'unsubscribe from a channel not joined',
        data: frame({ event: 'pusher:unsubscribe', data: { channel: pick(REFUSED_NAMES()) } }),
        expect: null,
      }),
      () => ({
        label: 'client event on a channel not joined',
        data: frame({
          event: `client-${pick(['typing', 'x', '', randomText(8)])}`,
          channel: pick([undefined, userChannel(ana), tenantChannel(tenant), 'public', randomText(20)]),
          data: pick(jsonValues()),
        }),
        expect: PUSHER_CODES.unauthorized,
      }),
      () => {
        const max = world.config().maxMessageBytes;
        const [bytes, expect] = pick([
          [max, null],
          [max - 1, null],
          [max + 1, PUSHER_CODES.reconnect],
          [4 * max, PUSHER_CODES.reconnect],
          [60_000, PUSHER_CODES.reconnect],
        ] as const);
        return { label: `frame of ${bytes} bytes`, data: padded(bytes), expect };
      },
    ];
  }

  /** Which channels each fuzzing socket was given a real signature for; every other success is a leak. */
  const authorized = new Map<FuzzSocket, Set<string>>();

  function legitSubscribe(s: FuzzSocket, channel: string): Shot {
    const { key, secret } = world.config().app;
    let set = authorized.get(s);
    if (!set) authorized.set(s, (set = new Set()));
    set.add(channel);
    return {
      label: `legit subscribe ${channel}`,
      data: frame({
        event: 'pusher:subscribe',
        data: { channel, auth: signChannelAuth(key, secret, s.socketId, channel) },
      }),
      expect: null,
    };
  }

  /** Sends `shots`, then a final ping, and waits for that pong: all synchronous answers are in by then. */
  async function fire(s: FuzzSocket, shots: Shot[]): Promise<void> {
    const pongsBefore = s.pongs();
    for (const shot of shots) s.send(shot);
    s.send({ label: 'final ping', data: frame({ event: 'pusher:ping' }), expect: 'pong' });
    const want = pongsBefore + shots.filter((x) => x.expect === 'pong').length + 1;
    await vi.waitFor(
      () => {
        if (s.closed) throw new Error(`closed ${JSON.stringify(s.closed)}`);
        if (s.pongs() < want) throw new Error(`${s.pongs()}/${want} pongs`);
      },
      { timeout: 20_000, interval: 20 },
    );
  }

  /** The answers a socket got, without the ones that are not tied to one frame. */
  function answers(s: FuzzSocket): Expect[] {
    return s
      .frames()
      .filter(
        (f) => !['pusher:connection_established', 'pusher_internal:subscription_succeeded'].includes(f.event),
      )
      .map((f) =>
        f.event === 'pusher:pong'
          ? 'pong'
          : f.event === 'pusher:error'
            ? (JSON.parse(f.data as string) as { code: number }).code
            : -1,
      );
  }

  /** Every frame is a Pusher frame: a JSON object, a string event, string data; errors carry {code,message}. */
  function frameProblems(s: FuzzSocket): string[] {
    const problems: string[] = [];
    if (s.binaryFrames) problems.push(`${s.binaryFrames} binary frames from the server`);
    for (const text of s.texts) {
      let f: unknown;
      try {
        f = JSON.parse(text);
      } catch {
        problems.push(`not JSON: ${text.slice(0, 100)}`);
        continue;
      }
      const { event, data, channel } = (f ?? {}) as { event?: unknown; data?: unknown; channel?: unknown };
      if (typeof f !== 'object' || f === null || Array.isArray(f) || typeof event !== 'string') {
        problems.push(`not a Pusher frame: ${text.slice(0, 100)}`);
        continue;
      }
      if (data !== undefined && typeof data !== 'string')
        problems.push(`data not a string: ${text.slice(0, 100)}`);
      if (channel !== undefined && typeof channel !== 'string')
        problems.push(`bad channel: ${text.slice(0, 100)}`);
      if (event === PROBE) problems.push(`received the healthy client's event: ${text.slice(0, 100)}`);
      if (event === 'pusher:error') {
        const d = JSON.parse(data as string) as { code?: unknown; message?: unknown };
        if (!(typeof d.code === 'number' && PUSHER_CODE_SET.has(d.code)) || typeof d.message !== 'string')
          problems.push(`bad error: ${text}`);
      } else if (event === 'pusher_internal:subscription_succeeded') {
        if (!authorized.get(s)?.has(channel as string))
          problems.push(`subscribed without authorization: ${text}`);
      } else if (!['pusher:connection_established', 'pusher:pong', 'pusher:ping'].includes(event)) {
        problems.push(`unexpected event: ${text.slice(0, 100)}`);
      }
    }
    return problems;
  }

  it(`answers every fuzzed frame as the protocol says and disturbs nobody (seed ${SEED})`, async () => {
    const started = Date.now();
    const gc = gcFunction();
    const heapBefore = gc ? (gc(), gc(), process.memoryUsage().heapUsed) : 0;
    const channelsBefore = edge.subscriptions.localChannels().length;
    const healthyId = healthy.connection.socket_id;

    await publish(world, userChannel(ana), PROBE, JSON.stringify({ n: 1 }));
    await vi.waitFor(() => expect(received).toEqual([1]));

    // Sequence sockets: random frames, with one legitimate subscription each among them.
    const sockets = await Promise.all(Array.from({ length: SOCKETS }, () => FuzzSocket.open(world, edge)));
    const plans = sockets.map((s, i) => {
      const gens = generators(s.socketId);
      const shots = Array.from({ length: FRAMES_PER_SOCKET }, () => pick(gens)());
      shots.splice(int(shots.length), 0, legitSubscribe(s, userChannel(900_000 + i)));
      return shots;
    });
    await Promise.all(sockets.map((s, i) => fire(s, plans[i]!)));

    // A burst of forged subscribes on one socket, then legitimate ones to many channels, then it goes away.
    const flooder = await FuzzSocket.open(world, edge);
    const floodShots = Array.from({ length: FLOOD }, (): Shot => {
      const channel = pick([userChannel(ana), tenantChannel(tenant), userChannel(1 + int(2 ** 31 - 2))]);
      return {
        label: 'flood',
        data: frame({
          event: 'pusher:subscribe',
          data: { channel, auth: forgedAuth(flooder.socketId, channel) },
        }),
        expect: PUSHER_CODES.unauthorized,
      };
    });
    const legitShots = Array.from({ length: LEGIT_FLOOD }, (_, k) =>
      legitSubscribe(flooder, userChannel(800_000 + k)),
    );
    await fire(flooder, [...floodShots, ...legitShots]);
    await vi.waitFor(
      () => {
        const ok = flooder
          .frames()
          .filter((f) => f.event === 'pusher_internal:subscription_succeeded').length;
        if (ok < LEGIT_FLOOD) throw new Error(`${ok}/${LEGIT_FLOOD} subscriptions`);
      },
      { timeout: 20_000, interval: 20 },
    );
    expect(edge.subscriptions.localChannels().length).toBe(channelsBefore + SOCKETS + LEGIT_FLOOD);

    // Sockets the edge or ws must close: over ws' hard limit (1009), text frames that are not UTF-8 (1007).
    const hardLimit = Math.max(4 * world.config().maxMessageBytes, 64 * 1024);
    const closers: [FuzzSocket, number][] = [];
    for (const [data, binary] of [
      [padded(hardLimit + 1), false],
      [Buffer.alloc(hardLimit + 1, 7), true],
      [padded(4 * hardLimit), false],
    ] as const) {
      const s = await FuzzSocket.open(world, edge);
      s.send({ label: 'over the hard limit', data, binary, expect: null });
      closers.push([s, 1009]);
    }
    for (const bytes of [[0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0x7b, 0x22, 0xfe, 0x22, 0x7d]]) {
      const s = await FuzzSocket.open(world, edge);
      s.send({ label: 'invalid UTF-8 text', data: Buffer.from(bytes), binary: false, expect: null });
      closers.push([s, 1007]);
    }
    for (const [s] of closers) await vi.waitFor(() => expect(s.closed).not.toBeNull(), { timeout: 10_000 });

    // Answers, one per frame, in order.
    const all = [...sockets, flooder];
    const plansAll = [...plans, [...floodShots, ...legitShots]];
    all.forEach((s, i) => {
      const shots = [...plansAll[i]!, { label: 'final ping', data: '', expect: 'pong' as const }];
      const want = shots.map((x) => x.expect).filter((x) => x !== null);
      const got = answers(s);
      const at = want.findIndex((w, j) => got[j] !== w);
      if (at !== -1 || got.length !== want.length) {
        const shot = shots.filter((x) => x.expect !== null)[at];
        throw new Error(
          `socket ${i}: answer ${at} is ${String(got[at])}, expected ${String(want[at])} for ${shot?.label}: ` +
            String(shot?.data).slice(0, 200),
        );
      }
      expect(s.closed).toBeNull();
    });
    for (const s of [...all, ...closers.map(([c]) => c)]) expect(frameProblems(s)).toEqual([]);
    expect(closers.map(([s, code]) => [s.closed?.code, code])).toEqual(
      closers.map(([, code]) => [code, code]),
    );

    // The healthy client: still on its first socket, gets the next event exactly once, and nothing twice.
    await publish(world, userChannel(ana), PROBE, JSON.stringify({ n: 2 }));
    await publish(world, userChannel(ana), PROBE, JSON.stringify({ n: 3 }));
    await vi.waitFor(() => expect(received).toEqual([1, 2, 3]));
    expect(healthy.connection.state).toBe('connected');
    expect(healthy.connection.socket_id).toBe(healthyId);
    expect((await fetch(`${edge.url}/healthz`, { signal: AbortSignal.timeout(5000) })).status).toBe(200);

    // Everything the fuzzers held is released when they go.
    for (const s of [...all, ...closers.map(([c]) => c)]) s.ws.close();
    await vi.waitFor(() => expect(edge.connectionCount).toBe(1), { timeout: 10_000 });
    await vi.waitFor(() => expect(edge.subscriptions.localChannels().length).toBe(channelsBefore), {
      timeout: 10_000,
    });
    let heapDelta: number | null = null;
    if (gc) {
      gc();
      gc();
      heapDelta = process.memoryUsage().heapUsed - heapBefore;
      expect(heapDelta).toBeLessThan(HEAP_BOUND_BYTES);
    }

    const sent = all.reduce((n, s) => n + s.sent, 0) + closers.length;
    const errors = new Map<number, number>();
    for (const s of all)
      for (const a of answers(s)) if (typeof a === 'number') errors.set(a, (errors.get(a) ?? 0) + 1);
    const closes = new Map<number, number>();
    for (const [s] of closers) closes.set(s.closed!.code, (closes.get(s.closed!.code) ?? 0) + 1);
    const fmt = (m: Map<number, number>) => [...m].map(([k, v]) => `${k}=${v}`).join(' ');
    console.log(
      `fuzz-frames: seed ${SEED}, ${sent} frames on ${all.length + closers.length} sockets; ` +
        `pusher:error ${fmt(errors)}; pongs ${all.reduce((n, s) => n + s.pongs(), 0)}; closes ${fmt(closes)}; ` +
        `heap delta ${heapDelta === null ? 'not measured (no gc)' : `${(heapDelta / 1048576).toFixed(1)} MB`}; ` +
        `${Date.now() - started} ms`,
    );
  });
});

/**
 * The edge's HTTP interfaces with fast-check inputs (FUZZ_SEED reproduces a run): `POST /broadcasting/auth`
 * (content types, bodies, bearer tokens) and the Pusher HTTP API's paths (malformed percent-escapes, unknown
 * app ids, signed and unsigned bodies). At least 10,000 inputs each; every answer a documented status and
 * code, never a 500, and the edge still serves after.
 */
describe('ws-edge HTTP endpoints under fuzzed input (fast-check)', () => {
  const RUNS = 10_000;
  const CONCURRENCY = 32;
  let world: EdgeWorld;
  let edge: EdgeServer;
  let userId: number;
  let otherUserId: number;
  let tenantId: number;

  beforeAll(async () => {
    world = await createEdgeWorld();
    ({
      tenantId,
      userIds: [userId, otherUserId],
    } = (await provisionTenant(world.prisma, 'fuzz-http', [{ name: 'a' }, { name: 'b', active: false }])) as {
      tenantId: number;
      userIds: [number, number];
    });
    // Thousands of requests from one IP and user in seconds: the limits have their own test.
    edge = await world.startSharedEdge({
      RATE_LIMIT_CHANNEL_AUTH_PER_USER: '0',
      RATE_LIMIT_CHANNEL_AUTH_PER_IP: '0',
      RATE_LIMIT_AUTH_FAILURES_PER_IP: '0',
    });
  });
  afterAll(async () => world.teardown());

  const INTERNALS = /at \/|\.ts:|\.js:\d|ECONN|node_modules|prisma|postgres|SQL/i;

  async function runAll<T>(items: T[], fn: (item: T) => Promise<string | null>): Promise<string[]> {
    const failures: string[] = [];
    for (let i = 0; i < items.length; i += CONCURRENCY) {
      const settled = await Promise.allSettled(items.slice(i, i + CONCURRENCY).map(fn));
      for (const s of settled) {
        if (s.status === 'rejected') failures.push(`no answer: ${String(s.reason)}`);
        else if (s.value !== null) failures.push(s.value);
      }
    }
    return failures;
  }

  async function judge(
    what: string,
    res: Response,
    allowed: Record<number, readonly string[] | null>,
    tally: Map<number, number>,
  ): Promise<string | null> {
    tally.set(res.status, (tally.get(res.status) ?? 0) + 1);
    const text = await res.text();
    if (!(res.status in allowed)) return `${what}: undocumented status ${res.status}: ${text.slice(0, 200)}`;
    if (res.status >= 400 && INTERNALS.test(text)) return `${what}: internals in ${text.slice(0, 200)}`;
    const codes = allowed[res.status];
    if (!codes) return null;
    try {
      const code = (JSON.parse(text) as { error?: { code?: string } }).error?.code ?? '';
      return codes.includes(code) ? null : `${what}: ${res.status} with code ${code}`;
    } catch {
      return `${what}: ${res.status} with a non-JSON body ${text.slice(0, 200)}`;
    }
  }

  const summary = (tally: Map<number, number>) => [...tally].map(([s, n]) => `${s}=${n}`).join(', ');

  const segment = fc.oneof(
    fc.string({ maxLength: 12 }).map(encodeURIComponent),
    fc.stringMatching(/^[A-Za-z0-9._~-]{0,16}$/),
    fc.constantFrom('%E0%A4%A', '%', '%zz', '%C0%AF', '%ED%A0%80', '%FF', '%00', '..', 'alarmcast', 'e2e'),
  );

  it(`answers ${RUNS} fuzzed /broadcasting/auth requests with documented statuses`, async () => {
    const jwts = {
      valid: await world.jwt(userId),
      inactive: await world.jwt(otherUserId),
      expired: await world.jwt(userId, -60),
    };
    const channel = fc.oneof(
      fc.constantFrom(
        userChannel(userId),
        userChannel(otherUserId),
        tenantChannel(tenantId),
        tenantChannel(tenantId + 1),
        'presence-x',
        'public',
        'private-user.',
      ),
      fc.string({ maxLength: 40 }),
    );
    const socketId = fc.oneof(
      fc.constant('1234.5678'),
      fc.stringMatching(/^\d{1,22}\.\d{0,22}$/),
      fc.string(),
    );
    const body = fc.oneof(
      fc
        .record({ socket_id: socketId, channel_name: channel }, { requiredKeys: [] })
        .map((r) => ({ type: 'application/x-www-form-urlencoded', text: new URLSearchParams(r).toString() })),
      fc
        .record({ socket_id: socketId, channel_name: channel }, { requiredKeys: [] })
        .map((r) => ({ type: 'application/json', text: JSON.stringify(r) })),
      fc.jsonValue().map((v) => ({ type: 'application/json', text: JSON.stringify(v) })),
      fc.string({ maxLength: 200 }).map((text) => ({ type: 'application/json', text })),
      fc
        .tuple(fc.constantFrom('text/plain', 'multipart/form-data', ''), fc.string({ maxLength: 200 }))
        .map(([type, text]) => ({ type, text })),
      fc.integer({ min: 1, max: 20 }).map((n) => ({
        type: 'application/x-www-form-urlencoded',
        text: Array.from({ length: n }, (_, i) => `k${i}=v`).join('&'),
      })),
      fc.constant({ type: 'application/json', text: `{"socket_id":"${'1'.repeat(5000)}"}` }),
    );
    const authorization = fc.oneof(
      fc.constantFrom(
        `Bearer ${jwts.valid}`,
        `Bearer ${jwts.inactive}`,
        `Bearer ${jwts.expired}`,
        '',
        'Bearer',
      ),
      fc.string({ maxLength: 60 }).map((s) => `Bearer ${s}`),
    );
    const inputs = fc.sample(fc.record({ body, authorization }), { numRuns: RUNS, seed: SEED });
    const tally = new Map<number, number>();
    const failures = await runAll(inputs, async ({ body, authorization }) => {
      const headers: Record<string, string> = {};
      if (body.type) headers['content-type'] = body.type;
      // fetch refuses header values outside printable ASCII; a token is ASCII anyway.
      const printable = [...authorization].every((ch) => ch >= ' ' && ch <= '~');
      if (authorization && printable) headers.authorization = authorization;
      const res = await fetch(`${edge.url}/broadcasting/auth`, {
        method: 'POST',
        headers,
        body: body.text,
        signal: AbortSignal.timeout(10_000),
      });
      return judge(
        `${body.type} ${body.text.slice(0, 80)} (${authorization.slice(0, 20)})`,
        res,
        {
          200: null,
          400: ['invalid_json'],
          401: ['unauthenticated'],
          403: ['forbidden'],
          413: ['payload_too_large'],
          415: ['unsupported_media_type'],
          422: ['validation_failed'],
        },
        tally,
      );
    });
    console.log(`fuzz /broadcasting/auth: ${inputs.length} requests: ${summary(tally)}`);
    expect(failures.slice(0, 20)).toEqual([]);
    expect(tally.get(200)).toBeGreaterThan(0);
    expect((await fetch(`${edge.url}/healthz`)).status).toBe(200);
  }, 240_000);

  it(`answers ${RUNS} fuzzed Pusher HTTP API requests (paths, signed and unsigned bodies) with documented statuses`, async () => {
    const app = world.config().app;
    const signedQuery = (path: string, body: string): string => {
      const params: Record<string, string> = {
        auth_key: app.key,
        auth_timestamp: String(Math.floor(Date.now() / 1000)),
        auth_version: '1.0',
        body_md5: createHash('md5').update(body).digest('hex'),
      };
      const query = Object.keys(params)
        .sort()
        .map((k) => `${k}=${params[k]}`)
        .join('&');
      const signature = createHmac('sha256', app.secret).update(`POST\n${path}\n${query}`).digest('hex');
      return `${query}&auth_signature=${signature}`;
    };
    const body = fc.oneof(
      fc.jsonValue().map((v) => JSON.stringify(v)),
      fc
        .record(
          {
            name: fc.string({ maxLength: 20 }),
            data: fc.oneof(fc.string({ maxLength: 50 }), fc.jsonValue()),
            channel: fc.oneof(fc.constant(userChannel(userId)), fc.string({ maxLength: 30 })),
            channels: fc.array(fc.string({ maxLength: 30 }), { maxLength: 3 }),
            socket_id: fc.string({ maxLength: 12 }),
          },
          { requiredKeys: [] },
        )
        .map((r) => JSON.stringify(r)),
      fc.string({ maxLength: 100 }),
    );
    const request = fc.record({
      appId: fc.oneof(fc.constant(app.id), segment),
      endpoint: fc.constantFrom('events', 'batch_events', '', 'events/x'),
      method: fc.constantFrom('POST', 'POST', 'GET'),
      signed: fc.boolean(),
      body,
      query: fc.oneof(fc.constant(''), fc.string({ maxLength: 30 }).map(encodeURIComponent)),
    });
    const inputs = fc.sample(request, { numRuns: RUNS, seed: SEED + 1 });
    const tally = new Map<number, number>();
    const failures = await runAll(inputs, async (r) => {
      const path = `/apps/${r.appId}/${r.endpoint}`;
      const query = r.signed ? signedQuery(path, r.body) : r.query;
      const res = await fetch(`${edge.url}${path}?${query}`, {
        method: r.method,
        headers: { 'content-type': 'application/json' },
        body: r.method === 'GET' ? undefined : r.body,
        signal: AbortSignal.timeout(10_000),
      });
      return judge(
        `${r.method} ${path} signed=${r.signed}`,
        res,
        {
          200: null,
          400: ['invalid_path', 'invalid_json', 'validation_failed'],
          401: ['unauthenticated'],
          404: ['not_found'],
          413: ['payload_too_large'],
        },
        tally,
      );
    });
    console.log(`fuzz HTTP API: ${inputs.length} requests: ${summary(tally)}`);
    expect(failures.slice(0, 20)).toEqual([]);
    expect(tally.get(400)).toBeGreaterThan(0);
    expect((await fetch(`${edge.url}/healthz`)).status).toBe(200);
  }, 240_000);
});
