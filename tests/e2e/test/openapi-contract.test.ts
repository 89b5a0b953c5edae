import { createHash, createHmac, randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { generateCollectorToken, hashCollectorToken, signUserJwt } from '@alarmcast/auth';
import {
  ROUTES,
  errorStatuses,
  expressPath,
  openApiDocument,
  type ErrorCode,
  type ProvisionGraph,
  type ProvisionResult,
  type RouteId,
  type RouteSpec,
  type ServiceName,
} from '@alarmcast/contracts';
import { createPrismaClient, provisionGraph } from '@alarmcast/db';
import { startIngest, parseIngestConfig, type IngestServer } from '@alarmcast/alarm-ingest';
import { startEdge, parseEdgeConfig, type EdgeServer } from '@alarmcast/ws-edge';
import { createTestDatabase, testEnv, uniqueRedisPrefix } from '@alarmcast/testing';
import { APP, JWT_SECRET } from '../src/stack.js';

/*
 * The contract test: every request shape the OpenAPI documents describe, and every error they list, sent to
 * the real services (ingest and edge on real Postgres and Redis), each answer checked against the document
 * the service itself serves at /openapi.json (status documented for the operation, required headers present
 * and well-formed, body valid against the operation's schema with ajv, an error's code among those the
 * document lists for that status). At the end: every documented (operation, status, error code) must have
 * been seen, except the few in UNREACHABLE, and every route the services registered must be documented.
 */

/** Documented answers this test cannot provoke without breaking the code, and why. */
const UNREACHABLE: { route: RouteId | '*'; what: number | ErrorCode; why: string }[] = [
  { route: '*', what: 'internal_error', why: 'a 500 is a bug; no request provokes one' },
  {
    route: 'pusherWebSocket',
    what: 503,
    why: 'needs an upgrade on a connection that was open before the edge started draining',
  },
];

const unreachable = (route: RouteId, what: number | ErrorCode): boolean =>
  UNREACHABLE.some((u) => (u.route === '*' || u.route === route) && u.what === what);

type Json = Record<string, unknown>;

const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false });
const documents = new Map<ServiceName, Json>();
const validators = new Map<string, ReturnType<typeof ajv.compile>>();

function pointer(...parts: string[]): string {
  return parts.map((p) => p.replace(/~/g, '~0').replace(/\//g, '~1')).join('/');
}

/** The compiled validator of a schema inside a service's document (its $refs resolve in the document). */
function validatorAt(service: ServiceName, path: string): ReturnType<typeof ajv.compile> {
  const key = `${service}#${path}`;
  let v = validators.get(key);
  if (!v) {
    v = ajv.compile({ $ref: `urn:openapi:${service}#/${path}` });
    validators.set(key, v);
  }
  return v;
}

/** What was seen: `${route} ${status}` and `${route} ${code}`. */
const seen = new Set<string>();

function operationOf(route: RouteSpec, service: ServiceName): Json {
  const op = ((documents.get(service)!.paths as Json)[route.path] as Json | undefined)?.[route.method];
  expect(op, `${route.method} ${route.path} is in ${service}'s document`).toBeDefined();
  return op as Json;
}

/** Checks a request body we send as a success against the document's request schema. */
function checkRequest(id: RouteId, contentType: string, body: unknown): void {
  const route: RouteSpec = ROUTES[id];
  const service = route.services[0]!;
  operationOf(route, service);
  const v = validatorAt(
    service,
    pointer('paths', route.path, route.method, 'requestBody', 'content', contentType, 'schema'),
  );
  expect(v(body), `${id} request ${JSON.stringify(body).slice(0, 200)}: ${ajv.errorsText(v.errors)}`).toBe(
    true,
  );
}

interface Answer {
  status: number;
  headers: Headers;
  text: string;
  json: unknown;
}

/** Checks one answer against the operation's documented responses and records what it covered. */
function checkAnswer(id: RouteId, answer: Answer, service: ServiceName = ROUTES[id].services[0]!): void {
  const route: RouteSpec = ROUTES[id];
  const op = operationOf(route, service);
  const label = `${id} → ${answer.status} ${answer.text.slice(0, 300)}`;
  const response = (op.responses as Record<string, Json>)[String(answer.status)];
  expect(response, `${label}: status documented`).toBeDefined();
  for (const [name, h] of Object.entries((response!.headers as Record<string, Json> | undefined) ?? {})) {
    const value = answer.headers.get(name);
    if (h.required) expect(value, `${label}: header ${name}`).not.toBeNull();
    if (value !== null && h.schema) {
      const v = validatorAt(
        service,
        pointer(
          'paths',
          route.path,
          route.method,
          'responses',
          String(answer.status),
          'headers',
          name,
          'schema',
        ),
      );
      expect(v(value), `${label}: header ${name}=${value}`).toBe(true);
    }
  }
  const content = response!.content as Record<string, Json> | undefined;
  if (content) {
    const [type] = Object.keys(content);
    expect(answer.headers.get('content-type') ?? '', `${label}: content type`).toContain(type!);
    if (type === 'application/json') {
      const v = validatorAt(
        service,
        pointer(
          'paths',
          route.path,
          route.method,
          'responses',
          String(answer.status),
          'content',
          type,
          'schema',
        ),
      );
      expect(v(answer.json), `${label}: ${ajv.errorsText(v.errors)}`).toBe(true);
    }
  }
  seen.add(`${id} ${answer.status}`);
  const code = (answer.json as { error?: { code?: string } } | null)?.error?.code;
  if (code !== undefined && route.errors.includes(code as ErrorCode)) seen.add(`${id} ${code}`);
}

async function call(
  id: RouteId,
  base: string,
  init: {
    path?: string;
    query?: string;
    headers?: Record<string, string>;
    body?: string;
    method?: string;
    service?: ServiceName;
  } = {},
): Promise<Answer> {
  const route: RouteSpec = ROUTES[id];
  // node:http rather than fetch: fetch refuses a GET with a body, which the documents cover (the JSON parser
  // of /v1 reads any request's body).
  const res = await new Promise<{ status: number; headers: Headers; text: string }>((resolve, reject) => {
    const req = httpRequest(`${base}${init.path ?? route.path}${init.query ? `?${init.query}` : ''}`, {
      method: init.method ?? route.method.toUpperCase(),
      headers: {
        ...init.headers,
        ...(init.body === undefined ? {} : { 'content-length': String(Buffer.byteLength(init.body)) }),
      },
    });
    req.on('response', (r) => {
      let text = '';
      r.setEncoding('utf8').on('data', (d: string) => (text += d));
      r.on('end', () => {
        const headers = new Headers();
        for (const [k, v] of Object.entries(r.headers)) if (v !== undefined) headers.set(k, String(v));
        resolve({ status: r.statusCode!, headers, text });
      });
    });
    req.on('error', reject);
    req.end(init.body);
  });
  const text = res.text;
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON (html, empty): checked by content type
  }
  const answer = { status: res.status, headers: res.headers, text, json };
  checkAnswer(id, answer, init.service);
  return answer;
}

/** Sends until the answer has `status` (limits and samplers take a request or a moment to bite). */
async function callUntil(status: number, send: () => Promise<Answer>, tries = 30): Promise<Answer> {
  let last: Answer | undefined;
  for (let i = 0; i < tries; i++) {
    last = await send();
    if (last.status === status) return last;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`never answered ${status}; last ${last?.status} ${last?.text}`);
}

const json = (headers: Record<string, string> = {}) => ({ 'content-type': 'application/json', ...headers });
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/** Pusher's request signing (as the server SDKs do it), for the edge's HTTP API. */
function signedQuery(path: string, body: string, secret = APP.secret): string {
  const params: Record<string, string> = {
    auth_key: APP.key,
    auth_timestamp: String(Math.floor(Date.now() / 1000)),
    auth_version: '1.0',
    body_md5: createHash('md5').update(body).digest('hex'),
  };
  const query = Object.keys(params)
    .sort()
    .map((k) => `${k}=${params[k]}`)
    .join('&');
  const signature = createHmac('sha256', secret).update(`POST\n${path}\n${query}`).digest('hex');
  return `${query}&auth_signature=${signature}`;
}

/** A WebSocket upgrade, by hand: the status line is all the document describes. */
function upgrade(edge: EdgeServer, path: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${edge.url}${path}`, {
      headers: {
        Connection: 'Upgrade',
        Upgrade: 'websocket',
        'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': randomBytes(16).toString('base64'),
      },
    });
    req.on('upgrade', (res, socket, head) => {
      // The first frame is a small unmasked text frame: 2 header bytes (payload < 126), then the JSON. It may
      // have come with the upgrade's own packet.
      const done = (frame: Buffer): void => {
        socket.destroy();
        resolve({
          status: res.statusCode!,
          headers: new Headers(),
          text: frame.subarray(2).toString('utf8'),
          json: null,
        });
      };
      if (head.length > 0) done(head);
      else socket.once('data', done);
    });
    req.on('response', (res) => {
      res.resume();
      resolve({ status: res.statusCode!, headers: new Headers(), text: '', json: null });
    });
    req.on('error', reject);
    req.end();
  });
}

const graph = {
  tenants: [
    {
      ref: 'A',
      name: 'Tenant A',
      slug: 'contract-a',
      users: [
        { ref: 'a1', email: 'a1@example.test', name: 'a1' },
        { ref: 'a-off', email: 'a-off@example.test', name: 'a-off', active: false },
        { ref: 'a-admin', email: 'a-admin@example.test', name: 'a-admin', role: 'tenant_admin' },
      ],
      devices: [
        { ref: 'da1', oui: '00D09E', productClass: 'HG8245', serialNumber: 'da1' },
        { ref: 'da2', oui: '00D09E', productClass: 'HG8245', serialNumber: 'da2' },
      ],
      collectorTokens: [
        { ref: 'collector-a', name: 'collector A', scopes: ['alarms', 'informs', 'tasks', 'campaigns'] },
        { ref: 'informs-only', name: 'informs collector', scopes: ['informs'] },
      ],
    },
    {
      ref: 'B',
      name: 'Tenant B',
      slug: 'contract-b',
      users: [{ ref: 'b1', email: 'b1@example.test', name: 'b1' }],
      devices: [{ ref: 'db1', oui: '00D09E', productClass: 'HG8245', serialNumber: 'db1' }],
    },
  ],
  // `platform` has the default scope only (alarms); `platform-all` every scope.
  collectorTokens: [
    { ref: 'platform', name: 'platform collector' },
    {
      ref: 'platform-all',
      name: 'platform application',
      scopes: ['alarms', 'informs', 'tasks', 'campaigns'],
    },
  ],
  platformUsers: [{ ref: 'admin', email: 'admin@example.test', name: 'admin', role: 'platform_admin' }],
} satisfies ProvisionGraph;

describe('the OpenAPI documents against the running services', () => {
  let world: ProvisionResult;
  let dropDb: () => Promise<void>;
  const ingests: IngestServer[] = [];
  const edges: EdgeServer[] = [];
  // main: defaults; limited: every limit at 1 a minute; busy: admission refuses past 1 waiting job;
  // down: Postgres unreachable (and, for the edge, Redis too).
  let main: { ingest: IngestServer; edge: EdgeServer };
  let limited: { ingest: IngestServer; edge: EdgeServer };
  let busy: IngestServer;
  let down: { ingest: IngestServer; edge: EdgeServer };
  let collector: string;
  let platform: string;
  let platformAll: string;
  let informsOnly: string;
  let userJwt: string;
  let inactiveJwt: string;
  let userId: number;
  let tenantA: number;
  let tenantB: number;
  let deviceA: number;
  let deviceB: number;
  let deviceA2: number;

  async function ingestWith(databaseUrl: string, env: Record<string, string> = {}): Promise<IngestServer> {
    const server = await startIngest(
      parseIngestConfig({
        DATABASE_URL: databaseUrl,
        REDIS_URL: testEnv().redisUrl,
        REDIS_PREFIX: uniqueRedisPrefix(),
        LOG_LEVEL: 'silent',
        INGEST_PORT: '0',
        INGEST_INTERNAL_PORT: '0',
        JWT_SECRET,
        PUSHER_APP_KEY: APP.key,
        ...env,
      }),
    );
    ingests.push(server);
    return server;
  }
  async function edgeWith(databaseUrl: string, env: Record<string, string> = {}): Promise<EdgeServer> {
    const server = await startEdge(
      parseEdgeConfig({
        DATABASE_URL: databaseUrl,
        REDIS_URL: testEnv().redisUrl,
        REDIS_PREFIX: uniqueRedisPrefix(),
        LOG_LEVEL: 'silent',
        NODE_ENV: 'test',
        EDGE_PORT: '0',
        EDGE_INTERNAL_PORT: '0',
        PUSHER_APP_ID: APP.id,
        PUSHER_APP_KEY: APP.key,
        PUSHER_APP_SECRET: APP.secret,
        JWT_SECRET,
        CORS_ORIGINS: 'http://console.example.test',
        ...env,
      }),
    );
    edges.push(server);
    return server;
  }

  beforeAll(async () => {
    for (const service of ['alarm-ingest', 'ws-edge'] as const) {
      const doc = openApiDocument(service);
      documents.set(service, doc);
      ajv.addSchema(doc, `urn:openapi:${service}`);
    }
    const db = await createTestDatabase(testEnv().postgresAdminUrl, testEnv().postgresTemplate);
    dropDb = db.drop;
    const prisma = createPrismaClient(db.url);
    world = await provisionGraph(prisma, graph, {
      hashToken: hashCollectorToken,
      newToken: generateCollectorToken,
    });
    await prisma.$disconnect();
    collector = world.collectorTokens['collector-a']!.token;
    platform = world.collectorTokens.platform!.token;
    platformAll = world.collectorTokens['platform-all']!.token;
    informsOnly = world.collectorTokens['informs-only']!.token;
    userId = world.users.a1!.id;
    userJwt = await signUserJwt(JWT_SECRET, userId);
    inactiveJwt = await signUserJwt(JWT_SECRET, world.users['a-off']!.id);
    tenantA = world.tenants.A!.id;
    tenantB = world.tenants.B!.id;
    deviceA = world.devices.da1!.id;
    deviceB = world.devices.db1!.id;
    deviceA2 = world.devices.da2!.id;

    const limits = {
      RATE_LIMIT_WINDOW_S: '60',
      RATE_LIMIT_ALARMS_PER_TOKEN: '1',
      RATE_LIMIT_ALARMS_PER_IP: '1',
      RATE_LIMIT_USER_API_PER_USER: '1',
      RATE_LIMIT_USER_API_PER_IP: '1',
      RATE_LIMIT_CHANNEL_AUTH_PER_USER: '1',
      RATE_LIMIT_CHANNEL_AUTH_PER_IP: '1',
    };
    const unreachableDb = 'postgresql://postgres@127.0.0.1:1/nothing';
    main = { edge: await edgeWith(db.url), ingest: await ingestWith(db.url) };
    limited = { edge: await edgeWith(db.url, limits), ingest: await ingestWith(db.url, limits) };
    busy = await ingestWith(db.url, { ADMISSION_MAX_QUEUE_WAITING: '1' });
    down = {
      ingest: await ingestWith(unreachableDb),
      edge: await edgeWith(unreachableDb, { REDIS_URL: 'redis://127.0.0.1:1' }),
    };
  });

  afterAll(async () => {
    await Promise.all([...ingests, ...edges].map((s) => s.close()));
    await dropDb?.();
  });

  const alarm = (over: Record<string, unknown> = {}) => ({
    deviceId: deviceA,
    alarmIdentifier: `contract-${Math.random().toString(36).slice(2)}`,
    eventType: 'Communications Alarm',
    probableCause: 'Loss of signal',
    specificProblem: 'WAN link down',
    perceivedSeverity: 'Major',
    ...over,
  });

  it('serves its own document at /openapi.json and renders it at /docs, on both services', async () => {
    for (const [service, base] of [
      ['alarm-ingest', main.ingest.url],
      ['ws-edge', main.edge.url],
    ] as const) {
      const doc = await call('openApiDocument', base, { service });
      expect(doc.json).toEqual(documents.get(service));
      const page = await call('apiDocsPage', base, { service });
      expect(page.headers.get('content-security-policy')).toContain("default-src 'none'");
      // every operation of the document is on the page
      for (const [path, methods] of Object.entries(documents.get(service)!.paths as Record<string, Json>))
        for (const method of Object.keys(methods))
          expect(page.text).toContain(`${method.toUpperCase()}</span> <code>${path}</code>`);
      await call('health', base, { service });
    }
    await call('ingestReadiness', main.ingest.url);
    await call('edgeReadiness', main.edge.url);
    expect((await call('ingestReadiness', down.ingest.url)).status).toBe(503);
    expect((await call('edgeReadiness', down.edge.url)).status).toBe(503);
  });

  it('POST /v1/alarms: every request shape and every error', async () => {
    const base = main.ingest.url;
    const send = (body: unknown, headers: Record<string, string> = {}, to = base) =>
      call('postAlarm', to, {
        headers: json({ ...bearer(collector), ...headers }),
        body: JSON.stringify(body),
      });
    const full = alarm({
      deviceId: String(deviceA),
      managedObjectInstance: 'Device.WANDevice.1',
      additionalText: 'text',
      additionalInformation: 'info',
      raisedAt: '2026-01-01T00:00:00+01:00',
    });
    for (const body of [alarm(), full, alarm({ deviceId: undefined, tenantId: tenantA })]) {
      checkRequest('postAlarm', 'application/json', body);
      expect((await send(body)).status).toBe(202);
    }
    checkRequest('postAlarm', 'application/json', { ...full, perceivedSeverity: 'Critical' });
    expect((await send({ ...full, perceivedSeverity: 'Critical' })).json).toMatchObject({
      outcome: 'updated',
    });
    expect((await send({ ...full, perceivedSeverity: 'Cleared' })).json).toMatchObject({
      outcome: 'cleared',
    });
    const keyed = alarm();
    const first = await send(keyed, { 'idempotency-key': 'contract-1' });
    const replay = await send(keyed, { 'idempotency-key': 'contract-1' });
    expect(replay.headers.get('idempotency-replayed')).toBe('true');
    expect(replay.text).toBe(first.text);

    const errors: [ErrorCode, () => Promise<Answer>][] = [
      ['invalid_json', () => call('postAlarm', base, { headers: json(bearer(collector)), body: '{' })],
      ['payload_too_large', () => send({ ...alarm(), additionalText: 'x'.repeat(17 * 1024) })],
      [
        'unsupported_media_type',
        () =>
          call('postAlarm', base, {
            headers: { 'content-type': 'text/plain', ...bearer(collector) },
            body: '{}',
          }),
      ],
      ['invalid_idempotency_key', () => send(alarm(), { 'idempotency-key': 'k'.repeat(256) })],
      ['unauthenticated', () => call('postAlarm', base, { headers: json(), body: JSON.stringify(alarm()) })],
      [
        'insufficient_scope',
        () => call('postAlarm', base, { headers: json(bearer(informsOnly)), body: JSON.stringify(alarm()) }),
      ],
      ['forbidden', () => send(alarm({ deviceId: undefined, tenantId: tenantB }))],
      ['alarm_not_active', () => send(alarm({ perceivedSeverity: 'Cleared' }))],
      ['validation_failed', () => send({ deviceId: deviceA })],
      ['unknown_device', () => send(alarm({ deviceId: deviceB }))],
      [
        'unknown_tenant',
        () =>
          call('postAlarm', base, {
            headers: json(bearer(platform)),
            body: JSON.stringify(alarm({ deviceId: undefined, tenantId: 999_999 })),
          }),
      ],
      ['idempotency_key_reused', () => send(alarm(), { 'idempotency-key': 'contract-1' })],
      ['service_unavailable', () => callUntil(503, () => send(alarm(), {}, down.ingest.url))],
    ];
    for (const [code, attempt] of errors)
      expect((await attempt()).json, code).toMatchObject({ error: { code } });
    const limitedSend = () => send(alarm(), {}, limited.ingest.url);
    expect((await callUntil(429, limitedSend)).json).toMatchObject({ error: { code: 'rate_limited' } });
    // Admission control: two jobs waiting (no resolver here) put the queue over its limit of 1.
    await send(alarm(), {}, busy.url);
    await send(alarm(), {}, busy.url);
    expect((await callUntil(503, () => send(alarm(), {}, busy.url))).json).toMatchObject({
      error: { code: 'overloaded' },
    });
  });

  it('POST /v1/alarms/batch: every request shape and every error', async () => {
    const base = main.ingest.url;
    const send = (body: unknown, headers: Record<string, string> = {}, to = base) =>
      call('postAlarmBatch', to, {
        headers: json({ ...bearer(collector), ...headers }),
        body: JSON.stringify(body),
      });
    const mixed = {
      alarms: [
        alarm(),
        alarm({ deviceId: undefined, tenantId: tenantA }),
        alarm({ perceivedSeverity: 'Cleared' }),
        42,
      ],
    };
    checkRequest('postAlarmBatch', 'application/json', mixed);
    const answer = await send(mixed, { 'idempotency-key': 'batch-1' });
    expect(answer.status).toBe(200);
    expect((answer.json as { results: { status: number }[] }).results.map((r) => r.status)).toEqual([
      202, 202, 409, 422,
    ]);
    expect((await send(mixed, { 'idempotency-key': 'batch-1' })).headers.get('idempotency-replayed')).toBe(
      'true',
    );
    const errors: [ErrorCode, () => Promise<Answer>][] = [
      ['invalid_json', () => call('postAlarmBatch', base, { headers: json(bearer(collector)), body: '[' })],
      ['payload_too_large', () => send({ alarms: [{ pad: 'x'.repeat(1024 * 1024 + 1) }] })],
      [
        'unsupported_media_type',
        () =>
          call('postAlarmBatch', base, {
            headers: { 'content-type': 'application/xml', ...bearer(collector) },
            body: '<a/>',
          }),
      ],
      ['invalid_idempotency_key', () => send(mixed, { 'idempotency-key': 'k'.repeat(256) })],
      [
        'unauthenticated',
        () =>
          call('postAlarmBatch', base, {
            headers: json(bearer('not-a-known-token')),
            body: JSON.stringify(mixed),
          }),
      ],
      [
        'insufficient_scope',
        () =>
          call('postAlarmBatch', base, { headers: json(bearer(informsOnly)), body: JSON.stringify(mixed) }),
      ],
      ['validation_failed', () => send({ alarms: [] })],
      ['idempotency_key_reused', () => send({ alarms: [alarm()] }, { 'idempotency-key': 'batch-1' })],
      ['service_unavailable', () => callUntil(503, () => send(mixed, {}, down.ingest.url))],
      ['rate_limited', () => callUntil(429, () => send({ alarms: [alarm()] }, {}, limited.ingest.url))],
    ];
    for (const [code, a] of errors) expect((await a()).json, code).toMatchObject({ error: { code } });
    await send({ alarms: [alarm(), alarm()] }, {}, busy.url);
    expect((await callUntil(503, () => send({ alarms: [alarm()] }, {}, busy.url))).json).toMatchObject({
      error: { code: 'overloaded' },
    });
  });

  it('GET /v1/admin/status: the answer and every error', async () => {
    const base = main.ingest.url;
    const adminJwt = await signUserJwt(JWT_SECRET, world.users.admin!.id);
    const status = (token: string, to = base, extra: Record<string, string> = {}, body?: string) =>
      call('adminStatus', to, { headers: { ...bearer(token), ...extra }, body });
    expect((await status(adminJwt)).status).toBe(200);
    const errors: [ErrorCode, () => Promise<Answer>][] = [
      ['invalid_json', () => status(adminJwt, base, { 'content-type': 'application/json' }, '{')],
      [
        'payload_too_large',
        () =>
          status(
            adminJwt,
            base,
            { 'content-type': 'application/json' },
            JSON.stringify({ x: 'x'.repeat(17 * 1024) }),
          ),
      ],
      [
        'unsupported_media_type',
        () => status(adminJwt, base, { 'content-type': 'application/json; charset=utf-16' }, '{}'),
      ],
      ['unauthenticated', () => status('not.a.jwt')],
      ['forbidden', () => status(userJwt)],
      ['service_unavailable', () => callUntil(503, () => status(adminJwt, down.ingest.url))],
      ['rate_limited', () => callUntil(429, () => status(adminJwt, limited.ingest.url))],
    ];
    for (const [code, a] of errors)
      expect((await a()).json, `admin status ${code}`).toMatchObject({ error: { code } });
  });

  it('GET /v1/alarms and POST /v1/alarms/{id}/ack: every request shape and every error', async () => {
    const base = main.ingest.url;
    const created = await call('postAlarm', base, {
      headers: json(bearer(collector)),
      body: JSON.stringify(alarm({ perceivedSeverity: 'Critical' })),
    });
    const alarmId = (created.json as { id: string }).id;
    const list = (
      query: string,
      token = userJwt,
      to = base,
      extra: Record<string, string> = {},
      body?: string,
    ) => call('listAlarms', to, { query, headers: { ...bearer(token), ...extra }, body });
    for (const q of [
      '',
      'state=active',
      'state=cleared&severity=Critical,Major',
      `deviceId=${deviceA}&limit=500`,
      'state=all&limit=1',
      'deliverable=true',
      'deliverable=false&state=all',
    ]) {
      expect((await list(q)).status, q).toBe(200);
    }
    const page = (await list('limit=1')).json as { next_cursor: string };
    expect((await list(`limit=1&cursor=${page.next_cursor}`)).status).toBe(200);

    const ack = (id: string, token = userJwt, to = base, extra: Record<string, string> = {}, body?: string) =>
      call('acknowledgeAlarm', to, {
        path: `/v1/alarms/${id}/ack`,
        headers: { ...bearer(token), ...extra },
        body,
      });
    expect((await ack(alarmId)).json).toMatchObject({ outcome: 'acknowledged' });
    expect((await ack(alarmId)).json).toMatchObject({ outcome: 'already_acknowledged' });

    const errors: [ErrorCode, () => Promise<Answer>][] = [
      ['invalid_json', () => list('', userJwt, base, { 'content-type': 'application/json' }, '{')],
      [
        'payload_too_large',
        () =>
          list(
            '',
            userJwt,
            base,
            { 'content-type': 'application/json' },
            JSON.stringify({ x: 'x'.repeat(17 * 1024) }),
          ),
      ],
      [
        'unsupported_media_type',
        () => list('', userJwt, base, { 'content-type': 'application/json; charset=utf-16' }, '{}'),
      ],
      ['unauthenticated', () => list('', 'not.a.jwt')],
      ['forbidden', () => list('', inactiveJwt)],
      ['validation_failed', () => list('limit=0')],
      ['service_unavailable', () => callUntil(503, () => list('', userJwt, down.ingest.url))],
      ['rate_limited', () => callUntil(429, () => list('', userJwt, limited.ingest.url))],
    ];
    for (const [code, a] of errors)
      expect((await a()).json, `list ${code}`).toMatchObject({ error: { code } });
    const ackErrors: [ErrorCode, () => Promise<Answer>][] = [
      ['invalid_json', () => ack(alarmId, userJwt, base, { 'content-type': 'application/json' }, '{')],
      [
        'payload_too_large',
        () =>
          ack(
            alarmId,
            userJwt,
            base,
            { 'content-type': 'application/json' },
            JSON.stringify({ x: 'x'.repeat(17 * 1024) }),
          ),
      ],
      [
        'unsupported_media_type',
        () => ack(alarmId, userJwt, base, { 'content-type': 'application/json; charset=latin1' }, '{}'),
      ],
      ['invalid_path', () => ack('%E0%A4%A')],
      ['unauthenticated', () => ack(alarmId, 'not.a.jwt')],
      ['forbidden', () => ack(alarmId, inactiveJwt)],
      ['not_found', () => ack('999999999')],
      ['service_unavailable', () => callUntil(503, () => ack(alarmId, userJwt, down.ingest.url))],
      ['rate_limited', () => callUntil(429, () => ack(alarmId, userJwt, limited.ingest.url))],
    ];
    for (const [code, a] of ackErrors)
      expect((await a()).json, `ack ${code}`).toMatchObject({ error: { code } });
  });

  /** The errors every /v1 route with a body parser answers, and every collector route's own. */
  function collectorErrors(
    send: (body: string, token?: string, to?: string, type?: string) => Promise<Answer>,
    valid: () => string,
    bigBody: string,
  ): [ErrorCode, () => Promise<Answer>][] {
    return [
      ['invalid_json', () => send('{')],
      ['payload_too_large', () => send(bigBody)],
      ['unsupported_media_type', () => send(valid(), collector, main.ingest.url, 'text/plain')],
      ['unauthenticated', () => send(valid(), 'not-a-known-token')],
      ['insufficient_scope', () => send(valid(), platform)],
      ['rate_limited', () => callUntil(429, () => send(valid(), collector, limited.ingest.url))],
      ['service_unavailable', () => callUntil(503, () => send(valid(), collector, down.ingest.url))],
      ['overloaded', () => callUntil(503, () => send(valid(), collector, busy.url))],
    ];
  }

  /** The errors of every user route: a body on /v1 goes through the JSON parser, then the JWT. */
  function userErrors(
    get: (token?: string, to?: string, extra?: Record<string, string>, body?: string) => Promise<Answer>,
  ): [ErrorCode, () => Promise<Answer>][] {
    const asJson = { 'content-type': 'application/json' };
    return [
      ['invalid_json', () => get(userJwt, main.ingest.url, asJson, '{')],
      [
        'payload_too_large',
        () => get(userJwt, main.ingest.url, asJson, JSON.stringify({ x: 'x'.repeat(17 * 1024) })),
      ],
      [
        'unsupported_media_type',
        () => get(userJwt, main.ingest.url, { 'content-type': 'application/json; charset=utf-16' }, '{}'),
      ],
      ['unauthenticated', () => get('not.a.jwt')],
      ['forbidden', () => get(inactiveJwt)],
      ['rate_limited', () => callUntil(429, () => get(userJwt, limited.ingest.url))],
      ['service_unavailable', () => callUntil(503, () => get(userJwt, down.ingest.url))],
    ];
  }

  async function expectErrors(label: string, errors: [ErrorCode, () => Promise<Answer>][]): Promise<void> {
    for (const [code, attempt] of errors)
      expect((await attempt()).json, `${label} ${code}`).toMatchObject({ error: { code } });
  }

  it('POST /v1/devices/informs: every request shape and every error', async () => {
    const send = (body: string, token = collector, to = main.ingest.url, type = 'application/json') =>
      call('postDeviceInforms', to, { headers: { 'content-type': type, ...bearer(token) }, body });
    const t0 = Date.now() - 60_000;
    const at = (s: number) => new Date(t0 + s * 1000).toISOString();
    const inform = (over: Record<string, unknown> = {}) => ({
      deviceId: deviceA,
      informedAt: at(0),
      eventCodes: ['1 BOOT'],
      periodicInformInterval: 300,
      ...over,
    });
    const full = inform({
      deviceId: String(deviceA2),
      informedAt: at(1),
      softwareVersion: '1.0.0',
      hardwareVersion: 'r2',
      uptimeS: 12,
      parameters: { 'Device.WiFi.Radio.1.Channel': 6, 'Device.DeviceInfo.Enabled': true },
    });
    const batch = {
      informs: [inform(), full, inform({ deviceId: deviceB }), inform({ eventCodes: [] }), 42],
    };
    checkRequest('postDeviceInforms', 'application/json', batch);
    const answer = await send(JSON.stringify(batch));
    expect(answer.status).toBe(200);
    const results = (answer.json as { results: { status: number; outcome?: string; error?: unknown }[] })
      .results;
    expect(results.map((r) => r.status)).toEqual([200, 200, 422, 422, 422]);
    expect(results[0]).toMatchObject({ outcome: 'changed', online: true });
    expect(results[2]).toMatchObject({ error: { code: 'unknown_device' } });
    const again = (await send(JSON.stringify({ informs: [inform()] }))).json as { results: unknown[] };
    expect(again.results[0]).toMatchObject({ outcome: 'duplicate' });
    const later = { informs: [inform({ informedAt: at(30), eventCodes: ['2 PERIODIC'] })] };
    expect(((await send(JSON.stringify(later))).json as { results: unknown[] }).results[0]).toMatchObject({
      outcome: 'unchanged',
    });
    await expectErrors('informs', [
      ['validation_failed', () => send(JSON.stringify({ informs: [] }))],
      ...collectorErrors(
        send,
        () => JSON.stringify({ informs: [inform()] }),
        JSON.stringify({ informs: [{ pad: 'x'.repeat(2 * 1024 * 1024 + 1) }] }),
      ),
    ]);
  });

  it('PUT /v1/tasks/{taskId}, the campaigns and GET /v1/devices/{id}/tasks: every request shape and every error', async () => {
    const base = main.ingest.url;
    const put = (taskId: string, body: string, token = collector, to = base, type = 'application/json') =>
      call('putTask', to, {
        path: `/v1/tasks/${taskId}`,
        headers: { 'content-type': type, ...bearer(token) },
        body,
      });
    const report = (taskId: string, body: Record<string, unknown>) => {
      checkRequest('putTask', 'application/json', body);
      return put(taskId, JSON.stringify(body));
    };
    const createCampaign = (body: string, token = collector, to = base, type = 'application/json') =>
      call('createCampaign', to, { headers: { 'content-type': type, ...bearer(token) }, body });
    const campaign = (over: Record<string, unknown> = {}) => ({
      campaignId: 'contract-c1',
      tenantId: tenantA,
      name: 'firmware 2.0',
      targetVersion: '2.0.0',
      deviceIds: [deviceA],
      ...over,
    });

    // Campaigns first: a task may name one.
    const c1 = campaign({ failureThresholdPercent: 50 });
    checkRequest('createCampaign', 'application/json', c1);
    expect((await createCampaign(JSON.stringify(c1))).status).toBe(201);
    expect((await createCampaign(JSON.stringify(c1))).json).toMatchObject({ outcome: 'replay' });
    const c2 = campaign({ campaignId: 'contract-c2', state: 'paused' });
    checkRequest('createCampaign', 'application/json', c2);
    expect(await createCampaign(JSON.stringify(c2), platformAll)).toMatchObject({ status: 201 });
    await expectErrors('createCampaign', [
      ['forbidden', () => createCampaign(JSON.stringify(campaign({ tenantId: tenantB })))],
      [
        'unknown_tenant',
        () => createCampaign(JSON.stringify(campaign({ campaignId: 'x1', tenantId: 999_999 })), platformAll),
      ],
      [
        'unknown_device',
        () => createCampaign(JSON.stringify(campaign({ campaignId: 'x2', deviceIds: [deviceB] }))),
      ],
      ['campaign_exists', () => createCampaign(JSON.stringify({ ...c1, name: 'another name' }))],
      ['validation_failed', () => createCampaign(JSON.stringify({ campaignId: 'x3' }))],
      ...collectorErrors(
        createCampaign,
        () => JSON.stringify(campaign({ campaignId: 'x4' })),
        JSON.stringify(campaign({ campaignId: 'x5', pad: 'x'.repeat(2 * 1024 * 1024 + 1) })),
      ),
    ]);

    // Tasks.
    const t1 = { deviceId: deviceA, kind: 'download', state: 'queued', campaignId: 'contract-c1' };
    expect((await report('contract-t1', { ...t1, requestedByUserId: userId })).status).toBe(201);
    expect((await report('contract-t1', t1)).json).toMatchObject({ outcome: 'replay' });
    const running = { ...t1, state: 'running', progress: 50, phase: 'applying' };
    expect((await report('contract-t1', running)).json).toMatchObject({ outcome: 'updated' });
    const failed = { ...t1, state: 'failed', faultCode: 9010, faultString: 'download failed', detail: 'd' };
    expect((await report('contract-t1', failed)).status).toBe(200);
    const t2 = { deviceId: deviceA, kind: 'reboot', state: 'succeeded' };
    expect((await report('contract-t2', t2)).status).toBe(201);
    expect(
      (
        await report('contract-t3', {
          deviceId: deviceA,
          kind: 'download',
          state: 'dispatched',
          targetSoftwareVersion: '2.0.0',
        })
      ).status,
    ).toBe(201);
    const body = (o: Record<string, unknown>) => JSON.stringify(o);
    await expectErrors('putTask', [
      ['invalid_path', () => put('%E0%A4%A', body(t2))],
      ['validation_failed', () => put('contract-t4', body({ deviceId: deviceA }))],
      ['unknown_device', () => put('contract-t4', body({ ...t2, deviceId: deviceB }))],
      ['unknown_campaign', () => put('contract-t4', body({ ...t2, campaignId: 'no-such-campaign' }))],
      [
        'device_not_in_campaign',
        () => put('contract-t4', body({ ...t2, deviceId: deviceA2, campaignId: 'contract-c1' })),
      ],
      ['task_conflict', () => put('contract-t2', body({ ...t2, kind: 'factoryReset' }))],
      ['illegal_task_transition', () => put('contract-t2', body({ ...t2, state: 'running' }))],
      [
        'task_progress_regressed',
        () =>
          put(
            'contract-t3',
            body({ deviceId: deviceA, kind: 'download', state: 'running', progress: 60 }),
          ).then(() =>
            put('contract-t3', body({ deviceId: deviceA, kind: 'download', state: 'running', progress: 10 })),
          ),
      ],
      ...collectorErrors(
        (b, token, to, type) => put('contract-t5', b, token, to, type),
        () => body(t2),
        body({ ...t2, detail: 'x'.repeat(17 * 1024) }),
      ),
    ]);

    // Campaign state changes.
    const patch = (id: string, b: string, token = collector, to = base, type = 'application/json') =>
      call('patchCampaign', to, {
        path: `/v1/campaigns/${id}`,
        headers: { 'content-type': type, ...bearer(token) },
        body: b,
      });
    for (const state of ['running', 'paused', 'completed'])
      checkRequest('patchCampaign', 'application/json', { state });
    expect((await patch('contract-c2', body({ state: 'running' }))).json).toMatchObject({
      outcome: 'updated',
    });
    expect((await patch('contract-c2', body({ state: 'running' }))).json).toMatchObject({
      outcome: 'replay',
    });
    expect((await patch('contract-c2', body({ state: 'aborted' }), platformAll)).status).toBe(200);
    await expectErrors('patchCampaign', [
      ['invalid_path', () => patch('%E0%A4%A', body({ state: 'paused' }))],
      ['not_found', () => patch('no-such-campaign', body({ state: 'paused' }))],
      ['validation_failed', () => patch('contract-c1', body({ state: 'finished' }))],
      ['illegal_campaign_transition', () => patch('contract-c2', body({ state: 'running' }))],
      ...collectorErrors(
        (b, token, to, type) => patch('contract-c1', b, token, to, type),
        () => body({ state: 'running' }),
        body({ state: 'running', pad: 'x'.repeat(17 * 1024) }),
      ),
    ]);

    // What users read.
    const getCampaign = (
      id: string,
      token = userJwt,
      to = base,
      extra: Record<string, string> = {},
      b?: string,
    ) =>
      call('getCampaign', to, {
        path: `/v1/campaigns/${id}`,
        headers: { ...bearer(token), ...extra },
        body: b,
      });
    const shown = (await getCampaign('contract-c1')).json as { failing_devices: unknown[] };
    expect(shown).toMatchObject({ campaign: { id: 'contract-c1', device_count: 1 } });
    expect(shown.failing_devices).toHaveLength(1);
    // Another tenant's campaign reads as one that does not exist.
    const otherTenantJwt = await signUserJwt(JWT_SECRET, world.users.b1!.id);
    await expectErrors('getCampaign', [
      ['invalid_path', () => getCampaign('%E0%A4%A')],
      ['not_found', () => getCampaign('no-such-campaign')],
      ['not_found', () => getCampaign('contract-c1', otherTenantJwt)],
      ...userErrors((token, to, extra, b) => getCampaign('contract-c1', token, to, extra, b)),
    ]);

    const listCampaigns = (
      query = '',
      token = userJwt,
      to = base,
      extra: Record<string, string> = {},
      b?: string,
    ) =>
      call('listCampaigns', to, {
        path: '/v1/campaigns',
        query,
        headers: { ...bearer(token), ...extra },
        body: b,
      });
    const listed = (await listCampaigns()).json as {
      campaigns: { id: string }[];
      next_cursor: string | null;
    };
    expect(listed.campaigns.map((c) => c.id)).toEqual(expect.arrayContaining(['contract-c1', 'contract-c2']));
    const paged = (await listCampaigns('limit=1&state=completed')).json as { next_cursor: string | null };
    expect(paged).toHaveProperty('next_cursor');
    await expectErrors('listCampaigns', [
      ['validation_failed', () => listCampaigns('state=done')],
      ...userErrors((token, to, extra, b) => listCampaigns('', token, to, extra, b)),
    ]);

    const listTasks = (
      device: string,
      query = '',
      token = userJwt,
      to = base,
      extra: Record<string, string> = {},
      b?: string,
    ) =>
      call('listDeviceTasks', to, {
        path: `/v1/devices/${device}/tasks`,
        query,
        headers: { ...bearer(token), ...extra },
        body: b,
      });
    const open = (await listTasks(String(deviceA))).json as { tasks: { id: string }[] };
    expect(open.tasks.map((t) => t.id)).toEqual(['contract-t3']);
    const all = (await listTasks(String(deviceA), 'state=all&limit=500')).json as { tasks: unknown[] };
    expect(all.tasks).toHaveLength(3);
    await expectErrors('listDeviceTasks', [
      ['invalid_path', () => listTasks('%E0%A4%A')],
      ['validation_failed', () => listTasks(String(deviceA), 'limit=0')],
      ['not_found', () => listTasks(String(deviceB))],
      ...userErrors((token, to, extra, b) => listTasks(String(deviceA), '', token, to, extra, b)),
    ]);
  });

  it('the preferences (user, tenant) and an alarm audience: every request shape and every error', async () => {
    const base = main.ingest.url;
    const tenantAdminJwt = await signUserJwt(JWT_SECRET, world.users['a-admin']!.id);
    const platformAdminJwt = await signUserJwt(JWT_SECRET, world.users.admin!.id);
    const asJson = { 'content-type': 'application/json' };
    const getMine = (token = userJwt, to = base, extra: Record<string, string> = {}, b?: string) =>
      call('getMyPreferences', to, { headers: { ...bearer(token), ...extra }, body: b });
    const putMine = (body: string, ifMatch: string | null, token = userJwt, to = base, extra = {}) =>
      call('putMyPreferences', to, {
        headers: {
          ...asJson,
          ...(ifMatch === null ? {} : { 'if-match': ifMatch }),
          ...bearer(token),
          ...extra,
        },
        body,
      });
    const tenantPath = (id: number | string) => `/v1/tenants/${id}/preferences`;
    const getTenant = (id: number | string, token = tenantAdminJwt, to = base, extra = {}, b?: string) =>
      call('getTenantPreferences', to, {
        path: tenantPath(id),
        headers: { ...bearer(token), ...extra },
        body: b,
      });
    const putTenant = (
      id: number | string,
      body: string,
      ifMatch: string | null,
      token = tenantAdminJwt,
      to = base,
      extra = {},
    ) =>
      call('putTenantPreferences', to, {
        path: tenantPath(id),
        headers: {
          ...asJson,
          ...(ifMatch === null ? {} : { 'if-match': ifMatch }),
          ...bearer(token),
          ...extra,
        },
        body,
      });

    // The user's own rules: read, write with the ETag read, every setting once.
    const read = await getMine();
    expect(read.json).toMatchObject({ user_id: userId, version: 0 });
    const rules = {
      minSeverity: 'Minor',
      mute: { eventTypes: ['Environmental Alarm'], probableCauses: ['Power problem'], devices: [deviceB] },
      categories: { alarms: true, tasks: false, campaigns: true, devices: false },
      quietHours: {
        timeZone: 'Europe/Paris',
        windows: [{ days: ['sat', 'sun'], start: '22:00', end: '07:00' }],
      },
    };
    checkRequest('putMyPreferences', 'application/json', rules);
    const written = await putMine(JSON.stringify(rules), read.headers.get('etag'));
    expect(written.json).toMatchObject({ version: 1, preferences: rules });
    checkRequest('putMyPreferences', 'application/json', { minSeverity: null, quietHours: null });
    expect((await putMine(JSON.stringify({ minSeverity: null, quietHours: null }), '*')).status).toBe(200);

    // The tenant's: its admin reads and writes it, and a platform admin too.
    const tenantRead = await getTenant(tenantA);
    expect(tenantRead.json).toMatchObject({ tenant_id: tenantA, version: 0 });
    const tenantDoc = { defaults: { minSeverity: 'Major' }, locks: ['minSeverity'], criticalBypass: false };
    checkRequest('putTenantPreferences', 'application/json', tenantDoc);
    expect((await putTenant(tenantA, JSON.stringify(tenantDoc), tenantRead.headers.get('etag'))).status).toBe(
      200,
    );
    checkRequest('putTenantPreferences', 'application/json', {});
    expect((await putTenant(tenantB, '{}', '*', platformAdminJwt)).status).toBe(200);
    expect((await getTenant(tenantB, platformAdminJwt)).json).toMatchObject({ version: 1 });

    const rulesBody = JSON.stringify({ categories: { tasks: true } });
    await expectErrors('putMyPreferences', [
      ['validation_failed', () => putMine(JSON.stringify({ minSeverity: 'Loud' }), '*')],
      ['preference_locked', () => putMine(JSON.stringify({ minSeverity: 'Critical' }), '*')],
      ['precondition_failed', () => putMine(rulesBody, '"0"')],
      ['precondition_required', () => putMine(rulesBody, null)],
      ...userErrors((token, to, extra, b) => putMine(b ?? rulesBody, '*', token, to, extra)),
    ]);
    await expectErrors('getMyPreferences', userErrors(getMine));
    await expectErrors('getTenantPreferences', [
      ['invalid_path', () => getTenant('%E0%A4%A')],
      ['not_found', () => getTenant(999_999, platformAdminJwt)],
      ['forbidden', () => getTenant(tenantA, userJwt)],
      ...userErrors((token, to, extra, b) => getTenant(tenantA, token, to, extra, b)),
    ]);
    const tenantBody = JSON.stringify(tenantDoc);
    await expectErrors('putTenantPreferences', [
      ['invalid_path', () => putTenant('%E0%A4%A', tenantBody, '*')],
      ['not_found', () => putTenant(999_999, tenantBody, '*', platformAdminJwt)],
      ['forbidden', () => putTenant(tenantB, tenantBody, '*')],
      ['validation_failed', () => putTenant(tenantA, JSON.stringify({ locks: ['volume'] }), '*')],
      ['precondition_failed', () => putTenant(tenantA, tenantBody, '"0"')],
      ['precondition_required', () => putTenant(tenantA, tenantBody, null)],
      ...userErrors((token, to, extra, b) => putTenant(tenantA, b ?? tenantBody, '*', token, to, extra)),
    ]);

    // An alarm's audience: its tenant's admin reads it; its other users may not; other tenants see nothing.
    const created = await call('postAlarm', base, {
      headers: json(bearer(collector)),
      body: JSON.stringify(alarm({ perceivedSeverity: 'Critical' })),
    });
    const alarmId = (created.json as { id: string }).id;
    const audience = (id: string, token = tenantAdminJwt, to = base, extra = {}, b?: string) =>
      call('getAlarmAudience', to, {
        path: `/v1/alarms/${id}/audience`,
        headers: { ...bearer(token), ...extra },
        body: b,
      });
    const shown = (await audience(alarmId)).json as { audience: { user_id: number }[] };
    expect(shown.audience.map((u) => u.user_id)).toContain(userId);
    expect((await audience(alarmId, platformAdminJwt)).status).toBe(200);
    const otherTenantJwt = await signUserJwt(JWT_SECRET, world.users.b1!.id);
    await expectErrors('getAlarmAudience', [
      ['invalid_path', () => audience('%E0%A4%A')],
      ['not_found', () => audience('999999999')],
      ['not_found', () => audience(alarmId, otherTenantJwt)],
      ['forbidden', () => audience(alarmId, userJwt)],
      ...userErrors((token, to, extra, b) => audience(alarmId, token, to, extra, b)),
    ]);
  });

  it('GET /v1/devices, /v1/devices/summary and /v1/devices/{id}: every request shape and every error', async () => {
    const base = main.ingest.url;
    const list = (
      query: string,
      token = userJwt,
      to = base,
      extra: Record<string, string> = {},
      b?: string,
    ) => call('listDevices', to, { query, headers: { ...bearer(token), ...extra }, body: b });
    for (const q of ['', 'online=true', 'online=false', 'limit=500'])
      expect((await list(q)).status, q).toBe(200);
    const first = (await list('limit=1')).json as { devices: { id: number }[]; next_cursor: string };
    expect(first.devices.map((d) => d.id)).toEqual([deviceA]);
    const second = (await list(`limit=1&cursor=${first.next_cursor}`)).json as { devices: { id: number }[] };
    expect(second.devices.map((d) => d.id)).toEqual([deviceA2]);
    await expectErrors('listDevices', [
      ['validation_failed', () => list('limit=0')],
      ['validation_failed', () => list('cursor=bogus')],
      ...userErrors((token, to, extra, b) => list('', token, to, extra, b)),
    ]);

    const summary = (token = userJwt, to = base, extra: Record<string, string> = {}, b?: string) =>
      call('getDeviceSummary', to, { headers: { ...bearer(token), ...extra }, body: b });
    expect((await summary()).json).toMatchObject({ summary: { tenant_id: tenantA, total: 2 } });
    const platformAdminJwt = await signUserJwt(JWT_SECRET, world.users.admin!.id);
    expect((await summary(platformAdminJwt)).json).toEqual({ summary: null });
    await expectErrors('getDeviceSummary', userErrors(summary));

    const device = (id: string, token = userJwt, to = base, extra: Record<string, string> = {}, b?: string) =>
      call('getDevice', to, { path: `/v1/devices/${id}`, headers: { ...bearer(token), ...extra }, body: b });
    expect((await device(String(deviceA))).json).toMatchObject({ device: { id: deviceA } });
    await expectErrors('getDevice', [
      ['invalid_path', () => device('%E0%A4%A')],
      ['not_found', () => device(String(deviceB))],
      ['not_found', () => device('not-a-device')],
      ...userErrors((token, to, extra, b) => device(String(deviceA), token, to, extra, b)),
    ]);
  });

  it('the console routes', async () => {
    const base = main.ingest.url;
    expect((await call('consoleRoot', base)).headers.get('location')).toBe('/console/');
    expect((await call('consoleNoSlash', base)).headers.get('location')).toBe('/console/');
    expect((await call('consolePage', base)).text).toContain('<html');
    expect((await call('consoleConfig', base)).json).toMatchObject({ key: APP.key });
  });

  it('POST /broadcasting/auth and its preflight: every request shape and every error', async () => {
    const base = main.edge.url;
    const auth = (body: string, type: string, token = userJwt, to = base) =>
      call('channelAuth', to, { headers: { 'content-type': type, ...bearer(token) }, body });
    const form = 'application/x-www-form-urlencoded';
    for (const channel of [`private-user.${userId}`, `private-tenant.${tenantA}`]) {
      const fields = { socket_id: '1234.5678', channel_name: channel };
      checkRequest('channelAuth', form, fields);
      checkRequest('channelAuth', 'application/json', fields);
      expect((await auth(new URLSearchParams(fields).toString(), form)).status).toBe(200);
      expect((await auth(JSON.stringify(fields), 'application/json')).status).toBe(200);
    }
    const ok = new URLSearchParams({
      socket_id: '1234.5678',
      channel_name: `private-user.${userId}`,
    }).toString();
    const errors: [ErrorCode, () => Promise<Answer>][] = [
      ['unsupported_media_type', () => auth(ok, 'text/plain')],
      ['invalid_json', () => auth('{', 'application/json')],
      ['payload_too_large', () => auth(`${ok}&pad=${'x'.repeat(5000)}`, form)],
      ['validation_failed', () => auth('socket_id=nope&channel_name=private-user.1', form)],
      ['forbidden', () => auth(`socket_id=1.2&channel_name=private-user.${world.users.b1!.id}`, form)],
      ['service_unavailable', () => auth(ok, form, userJwt, down.edge.url)],
      ['rate_limited', () => callUntil(429, () => auth(ok, form, userJwt, limited.edge.url))],
    ];
    for (const [code, a] of errors) expect((await a()).json, code).toMatchObject({ error: { code } });
    const unauthenticated = await auth(ok, form, 'not.a.jwt');
    expect(unauthenticated.json).toMatchObject({ error: { code: 'unauthenticated' } });
    expect(unauthenticated.headers.get('www-authenticate')).toBe('Bearer');
    const preflight = await call('channelAuthPreflight', base, {
      headers: { origin: 'http://console.example.test', 'access-control-request-method': 'POST' },
    });
    expect(preflight.headers.get('access-control-allow-origin')).toBe('http://console.example.test');
  });

  it("Pusher's HTTP API: every request shape and every error", async () => {
    for (const id of ['pusherTrigger', 'pusherBatch'] as const) {
      const path = expressPath(ROUTES[id]).replace(':appId', APP.id);
      const publish = (body: string, opts: { path?: string; secret?: string; to?: string } = {}) =>
        call(id, opts.to ?? main.edge.url, {
          path: opts.path ?? path,
          query: signedQuery(opts.path ?? path, body, opts.secret),
          headers: json(),
          body,
        });
      const event = { name: 'App\\Events\\Ping', data: '{"n":1}' };
      const bodies =
        id === 'pusherTrigger'
          ? [
              { ...event, channel: `private-user.${userId}` },
              {
                ...event,
                channels: [`private-user.${userId}`, `private-tenant.${tenantA}`],
                socket_id: '1.2',
              },
            ]
          : [
              {
                batch: [
                  { ...event, channel: `private-user.${userId}` },
                  { ...event, channel: 'public-news' },
                ],
              },
            ];
      for (const body of bodies) {
        checkRequest(id, 'application/json', body);
        expect((await publish(JSON.stringify(body))).status, id).toBe(200);
      }
      const big =
        id === 'pusherTrigger'
          ? { ...bodies[0], data: 'x'.repeat(11 * 1024) }
          : { batch: [{ ...event, channel: 'c', data: 'x'.repeat(11 * 1024) }] };
      const errors: [ErrorCode, () => Promise<Answer>][] = [
        ['not_found', () => publish(JSON.stringify(bodies[0]), { path: path.replace(APP.id, 'other-app') })],
        ['unauthenticated', () => publish(JSON.stringify(bodies[0]), { secret: 'wrong' })],
        ['invalid_json', () => publish('{')],
        ['validation_failed', () => publish(JSON.stringify({ data: 'x' }))],
        ['payload_too_large', () => publish(JSON.stringify(big))],
        ['service_unavailable', () => publish(JSON.stringify(bodies[0]), { to: down.edge.url })],
      ];
      for (const [code, a] of errors)
        expect((await a()).json, `${id} ${code}`).toMatchObject({ error: { code } });
    }
  });

  it('the Pusher WebSocket upgrade', async () => {
    const answer = await upgrade(main.edge, `/app/${APP.key}?protocol=7&client=js&version=8.6.0`);
    checkAnswer('pusherWebSocket', answer);
    expect(answer.status).toBe(101);
    expect(answer.text).toContain('pusher:connection_established');
  });

  it('every documented status and error code was answered, except the unreachable ones listed', () => {
    const missing: string[] = [];
    for (const [id, route] of Object.entries(ROUTES) as [RouteId, RouteSpec][]) {
      for (const status of Object.keys(route.responses).map(Number))
        if (!unreachable(id, status) && !seen.has(`${id} ${status}`)) missing.push(`${id} ${status}`);
      for (const codes of errorStatuses(route).values())
        for (const code of codes)
          if (!unreachable(id, code) && !seen.has(`${id} ${code}`)) missing.push(`${id} ${code}`);
    }
    expect(missing).toEqual([]);
  });

  it('every route the services register is in their documents', () => {
    for (const [service, server] of [
      ['alarm-ingest', main.ingest],
      ['ws-edge', main.edge],
    ] as const) {
      const paths = documents.get(service)!.paths as Record<string, Json>;
      const undocumented = server.routes.filter(
        (r) => !paths[r.path.replace(/:([A-Za-z0-9_]+)/g, '{$1}')]?.[r.method],
      );
      expect(server.routes.length).toBeGreaterThan(3);
      expect(undocumented, service).toEqual([]);
    }
  });
});
