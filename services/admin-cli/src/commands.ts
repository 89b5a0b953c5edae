import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { text } from 'node:stream/consumers';
import {
  PreferenceRules,
  ProvisionGraph,
  TenantPreferences,
  lockedSettingsIn,
  type ParsedProvisionGraph,
  type ProvisionResult,
} from '@alarmcast/contracts';
import {
  applyMigrations,
  createPgPool,
  ensureDatabase,
  Prisma,
  provisionGraph,
  readTenantPreferences,
  readUserPreferences,
  writeTenantPreferences,
  writeUserPreferences,
  type PgPool,
  type PrismaClient,
} from '@alarmcast/db';
import { generateCollectorToken, hashCollectorToken, signUserJwt } from '@alarmcast/auth';
import type { CommandArgs, CommandName } from './args.js';
import { requireJwtSecret, type CliConfig } from './config.js';
import { CliError } from './errors.js';
import { DEMO_SLUG, DEMO_TENANT, DEMO_WORLD } from './demo-world.js';

type Handler<N extends CommandName> = (
  prisma: PrismaClient,
  config: CliConfig,
  args: CommandArgs<N>,
) => Promise<object>;

export async function migrate(_prisma: PrismaClient, config: CliConfig): Promise<{ applied: string[] }> {
  await ensureDatabase(config.databaseUrl);
  return applyMigrations(config.databaseUrl);
}

export async function createTenant(
  prisma: PrismaClient,
  _config: CliConfig,
  args: CommandArgs<'tenant create'>,
) {
  return prisma.tenant.create({ data: args, select: { id: true, name: true, slug: true, createdAt: true } });
}

export async function createUser(prisma: PrismaClient, _config: CliConfig, args: CommandArgs<'user create'>) {
  return prisma.user.create({
    data: args,
    select: { id: true, tenantId: true, email: true, name: true, role: true, active: true, createdAt: true },
  });
}

export async function deactivateUser(
  prisma: PrismaClient,
  _config: CliConfig,
  args: CommandArgs<'user deactivate'>,
) {
  return prisma.user.update({
    where: { id: args.id },
    data: { active: false },
    select: { id: true, active: true },
  });
}

/** The edges notice through the database's trigger (NOTIFY), as they do for any writer of `users`. */
export async function moveUser(prisma: PrismaClient, _config: CliConfig, args: CommandArgs<'user move'>) {
  return prisma.user.update({
    where: { id: args.id },
    data: { tenantId: args.tenantId },
    select: { id: true, tenantId: true, active: true },
  });
}

export async function createDevice(
  prisma: PrismaClient,
  _config: CliConfig,
  args: CommandArgs<'device create'>,
) {
  return prisma.cpeDevice.create({
    data: args,
    select: {
      id: true,
      tenantId: true,
      oui: true,
      productClass: true,
      serialNumber: true,
      name: true,
      createdAt: true,
    },
  });
}

export async function createShare(
  prisma: PrismaClient,
  _config: CliConfig,
  args: CommandArgs<'share create'>,
) {
  return prisma.userDevice.create({ data: args, select: { userId: true, deviceId: true, createdAt: true } });
}

export async function deleteShare(
  prisma: PrismaClient,
  _config: CliConfig,
  args: CommandArgs<'share delete'>,
) {
  return prisma.userDevice.delete({
    where: { userId_deviceId: { userId: args.userId, deviceId: args.deviceId } },
    select: { userId: true, deviceId: true },
  });
}

export async function createToken(
  prisma: PrismaClient,
  _config: CliConfig,
  args: CommandArgs<'token create'>,
) {
  const token = generateCollectorToken();
  const row = await prisma.collectorToken.create({
    data: { ...args, tokenHash: hashCollectorToken(token) },
    select: { id: true, name: true, tenantId: true, scopes: true, createdAt: true },
  });
  return { ...row, token };
}

/** Idempotent: revoking a revoked token keeps its first revocation time. */
export async function revokeToken(
  prisma: PrismaClient,
  _config: CliConfig,
  args: CommandArgs<'token revoke'>,
) {
  const select = { id: true, name: true, tenantId: true, revokedAt: true } as const;
  const existing = await prisma.collectorToken.findUnique({ where: { id: args.id }, select });
  if (!existing) throw new CliError('not_found', `no collector token with id ${args.id}`);
  if (existing.revokedAt) return existing;
  return prisma.collectorToken.update({ where: { id: args.id }, data: { revokedAt: new Date() }, select });
}

/**
 * Mints for inactive users too: checking that the edge turns a deactivated user away is one of the things
 * this is for. The output says whether the user is active.
 */
export async function mintJwt(prisma: PrismaClient, config: CliConfig, args: CommandArgs<'jwt'>) {
  const secret = requireJwtSecret(config);
  const user = await prisma.user.findUnique({
    where: { id: args.userId },
    select: { id: true, tenantId: true, active: true },
  });
  if (!user) throw new CliError('not_found', `no user with id ${args.userId}`);
  const jwt = await signUserJwt(secret, user.id, args.ttlSeconds);
  return { userId: user.id, tenantId: user.tenantId, active: user.active, ttlSeconds: args.ttlSeconds, jwt };
}

export async function provision(prisma: PrismaClient, config: CliConfig, args: CommandArgs<'provision'>) {
  const secret = requireJwtSecret(config);
  const graph = parseGraph(await readGraphText(args.file, config.cwd));
  const result = await provisionGraph(prisma, graph, {
    hashToken: hashCollectorToken,
    newToken: generateCollectorToken,
  });
  return addJwts(result, secret);
}

export interface DemoResult extends ProvisionResult {
  created: boolean;
  note: string;
}

export async function demo(prisma: PrismaClient, config: CliConfig): Promise<DemoResult> {
  const secret = requireJwtSecret(config);
  if (!(await prisma.tenant.findUnique({ where: { slug: DEMO_SLUG }, select: { id: true } }))) {
    try {
      const result = await provisionGraph(prisma, DEMO_WORLD, {
        hashToken: hashCollectorToken,
        newToken: generateCollectorToken,
      });
      return {
        created: true,
        note: 'Created the demo world. Collector tokens are shown only this once.',
        ...(await addJwts(result, secret)),
      };
    } catch (err) {
      // Another `demo` run won the race and created it meanwhile: report that one. Any other conflict (an
      // unrelated tenant or user taking a demo slug or email) is the caller's to resolve.
      const raced = err instanceof Prisma.PrismaClientKnownRequestError && err.code === 'P2002';
      if (!raced || !(await prisma.tenant.findUnique({ where: { slug: DEMO_SLUG } }))) throw err;
    }
  }
  return {
    created: false,
    note:
      'The demo world already existed: these are its ids, with fresh JWTs. Collector tokens are stored only ' +
      'as hashes and cannot be shown again, so a new token was created for the demo tenant; earlier tokens stay valid.',
    ...(await addJwts(await loadDemoWorld(prisma), secret)),
  };
}

/** The existing demo world by its natural keys, plus a new collector token for the demo tenant. */
async function loadDemoWorld(prisma: PrismaClient): Promise<ProvisionResult> {
  const result: ProvisionResult = { tenants: {}, users: {}, devices: {}, collectorTokens: {} };
  const tenants = DEMO_WORLD.tenants;
  const users = tenants.flatMap((t) => t.users);
  const devices = tenants.flatMap((t) => t.devices);
  const [tenantRows, userRows, deviceRows] = await Promise.all([
    prisma.tenant.findMany({
      where: { slug: { in: tenants.map((t) => t.slug) } },
      select: { id: true, slug: true },
    }),
    prisma.user.findMany({
      where: { email: { in: users.map((u) => u.email) } },
      select: { id: true, tenantId: true, email: true },
    }),
    prisma.cpeDevice.findMany({
      where: {
        OR: devices.map((d) => ({ oui: d.oui, productClass: d.productClass, serialNumber: d.serialNumber })),
      },
      select: { id: true, tenantId: true, oui: true, productClass: true, serialNumber: true },
    }),
  ]);
  // Someone may have deleted part of the world since: what is gone is left out rather than invented.
  for (const t of tenants) {
    const row = tenantRows.find((r) => r.slug === t.slug);
    if (row) result.tenants[t.ref] = { id: row.id };
  }
  for (const u of users) {
    const row = userRows.find((r) => r.email === u.email);
    if (row) result.users[u.ref] = { id: row.id, tenantId: row.tenantId };
  }
  for (const d of devices) {
    const row = deviceRows.find(
      (r) => r.oui === d.oui && r.productClass === d.productClass && r.serialNumber === d.serialNumber,
    );
    if (row) result.devices[d.ref] = { id: row.id, tenantId: row.tenantId };
  }
  const demoTenantId = result.tenants[DEMO_TENANT.ref]?.id;
  if (demoTenantId === undefined)
    throw new CliError('not_found', `the demo tenant (slug ${DEMO_SLUG}) is gone`);
  for (const k of DEMO_TENANT.collectorTokens) {
    const token = generateCollectorToken();
    const row = await prisma.collectorToken.create({
      data: {
        name: k.name,
        tenantId: demoTenantId,
        tokenHash: hashCollectorToken(token),
        scopes: [...k.scopes],
      },
      select: { id: true },
    });
    result.collectorTokens[k.ref] = { id: row.id, tenantId: demoTenantId, token };
  }
  return result;
}

async function addJwts(result: ProvisionResult, secret: string): Promise<ProvisionResult> {
  const users = Object.values(result.users);
  // In slices: signing 100,000 at once would hold 100,000 pending WebCrypto operations in memory.
  for (let i = 0; i < users.length; i += 1000) {
    await Promise.all(
      users.slice(i, i + 1000).map(async (u) => {
        u.jwt = await signUserJwt(secret, u.id);
      }),
    );
  }
  return result;
}

/** A file or stdin (`-`), relative to where the CLI was started. */
async function readGraphText(file: string, cwd: string): Promise<string> {
  if (file === '-') return text(process.stdin);
  try {
    return await readFile(resolve(cwd, file), 'utf8');
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code === 'ENOENT' || code === 'EISDIR' || code === 'EACCES') {
      throw new CliError('invalid_arguments', `cannot read --file ${file}: ${String(code)}`);
    }
    throw err;
  }
}

/**
 * Validates the whole graph before anything is written, so that every mistake in it is reported at once
 * and as invalid_arguments: zod issues with their JSON path, refs used twice, shares naming unknown refs.
 */
function parseGraph(source: string): ParsedProvisionGraph {
  let json: unknown;
  try {
    json = JSON.parse(source);
  } catch (err) {
    throw new CliError('invalid_arguments', `the graph is not valid JSON: ${(err as Error).message}`);
  }
  const parsed = ProvisionGraph.safeParse(json);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new CliError('invalid_arguments', `invalid graph: ${problems.slice(0, 5).join('; ')}`, {
      problems,
    });
  }
  const graph = parsed.data;
  const problems = [
    ...duplicates(
      'tenant',
      graph.tenants.map((t) => t.ref),
    ),
    ...duplicates(
      'user',
      [...graph.tenants.flatMap((t) => t.users), ...graph.platformUsers].map((u) => u.ref),
    ),
    ...duplicates(
      'device',
      graph.tenants.flatMap((t) => t.devices).map((d) => d.ref),
    ),
    ...duplicates(
      'token',
      [...graph.tenants.flatMap((t) => t.collectorTokens), ...graph.collectorTokens].map((k) => k.ref),
    ),
  ];
  const userRefs = new Set(
    [...graph.tenants.flatMap((t) => t.users), ...graph.platformUsers].map((u) => u.ref),
  );
  const deviceRefs = new Set(graph.tenants.flatMap((t) => t.devices).map((d) => d.ref));
  graph.shares.forEach((s, i) => {
    if (!userRefs.has(s.user)) problems.push(`shares.${i}.user: unknown user ref ${s.user}`);
    if (!deviceRefs.has(s.device)) problems.push(`shares.${i}.device: unknown device ref ${s.device}`);
  });
  if (problems.length > 0) {
    throw new CliError('invalid_arguments', `invalid graph: ${problems.slice(0, 5).join('; ')}`, {
      problems,
    });
  }
  return graph;
}

function duplicates(kind: string, refs: string[]): string[] {
  const seen = new Set<string>();
  const twice = new Set<string>();
  for (const r of refs) (seen.has(r) ? twice : seen).add(r);
  return [...twice].map((r) => `${kind} ref ${r} is used more than once`);
}

/** Runs `work` on a one-connection pool: the preference statements live in packages/db (node-postgres). */
async function withPool<T>(config: CliConfig, work: (pool: PgPool) => Promise<T>): Promise<T> {
  const pool = createPgPool(config.databaseUrl, { max: 1 });
  try {
    return await work(pool);
  } finally {
    await pool.end();
  }
}

async function preferenceOwner(
  prisma: PrismaClient,
  args: { userId: number | null; tenantId: number | null },
) {
  if (args.userId !== null) {
    const user = await prisma.user.findUnique({ where: { id: args.userId }, select: { tenantId: true } });
    if (!user) throw new CliError('not_found', `no user with id ${args.userId}`);
    return { kind: 'user' as const, id: args.userId, tenantId: user.tenantId };
  }
  const tenant = await prisma.tenant.findUnique({ where: { id: args.tenantId! }, select: { id: true } });
  if (!tenant) throw new CliError('not_found', `no tenant with id ${args.tenantId}`);
  return { kind: 'tenant' as const, id: tenant.id };
}

export async function getPreferences(
  prisma: PrismaClient,
  config: CliConfig,
  args: CommandArgs<'preferences get'>,
) {
  const owner = await preferenceOwner(prisma, args);
  return withPool(config, async (pool) => {
    if (owner.kind === 'user') {
      const stored = await readUserPreferences(pool, owner.id);
      return { userId: owner.id, version: stored?.version ?? 0, preferences: stored?.doc ?? {} };
    }
    const stored = await readTenantPreferences(pool, owner.id);
    return {
      tenantId: owner.id,
      version: stored?.version ?? 0,
      preferences: TenantPreferences.parse(stored?.doc ?? {}),
    };
  });
}

/** Validated as PUT /v1/me/preferences and PUT /v1/tenants/{id}/preferences validate (contracts). */
export async function setPreferences(
  prisma: PrismaClient,
  config: CliConfig,
  args: CommandArgs<'preferences set'>,
) {
  const owner = await preferenceOwner(prisma, args);
  const source = await readGraphText(args.file, config.cwd);
  let json: unknown;
  try {
    json = JSON.parse(source);
  } catch (err) {
    throw new CliError('invalid_arguments', `the preferences are not valid JSON: ${(err as Error).message}`);
  }
  const schema = owner.kind === 'user' ? PreferenceRules : TenantPreferences;
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(document)'}: ${i.message}`);
    throw new CliError('invalid_arguments', `invalid preferences: ${problems.slice(0, 5).join('; ')}`, {
      problems,
    });
  }
  return withPool(config, async (pool) => {
    let result;
    if (owner.kind === 'user') {
      const tenant = owner.tenantId === null ? null : await readTenantPreferences(pool, owner.tenantId);
      const locked = lockedSettingsIn(
        parsed.data as PreferenceRules,
        tenant ? TenantPreferences.parse(tenant.doc) : null,
      );
      if (locked.length > 0)
        throw new CliError('invalid_arguments', `the user's tenant locks ${locked.join(', ')}`, { locked });
      result = await writeUserPreferences(pool, owner.id, parsed.data as PreferenceRules, args.expected);
    } else {
      result = await writeTenantPreferences(pool, owner.id, parsed.data as TenantPreferences, args.expected);
    }
    if (result.kind === 'conflict')
      throw new CliError(
        'conflict',
        `the preferences are at version ${result.version}, not ${args.expected}`,
        {
          version: result.version,
        },
      );
    const key = owner.kind === 'user' ? 'userId' : 'tenantId';
    return { [key]: owner.id, version: result.version, preferences: parsed.data };
  });
}

/** Every command's handler, by the name parseCommandLine returns. */
export const HANDLERS: { [N in CommandName]: Handler<N> } = {
  migrate,
  'tenant create': createTenant,
  'user create': createUser,
  'user deactivate': deactivateUser,
  'user move': moveUser,
  'device create': createDevice,
  'share create': createShare,
  'share delete': deleteShare,
  'token create': createToken,
  'token revoke': revokeToken,
  jwt: mintJwt,
  'preferences get': getPreferences,
  'preferences set': setPreferences,
  provision,
  demo,
};

export function runCommand(
  prisma: PrismaClient,
  config: CliConfig,
  name: CommandName,
  args: unknown,
): Promise<object> {
  // parseCommandLine validated `args` with the schema of `name`, which TypeScript cannot correlate here.
  const handler = HANDLERS[name] as Handler<CommandName>;
  return handler(prisma, config, args as CommandArgs<CommandName>);
}
