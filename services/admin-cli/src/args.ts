import { parseArgs, type ParseArgsConfig } from 'node:util';
import { z } from 'zod';
import { CollectorScopes, DEFAULT_COLLECTOR_SCOPES, ProvisionGraph } from '@alarmcast/contracts';
import { CliError } from './errors.js';

// Flag values obey the same rules as the fields of a provision graph: one definition of a valid slug, email,
// OUI..., in contracts, whichever way an object is created.
const tenantFields = ProvisionGraph.shape.tenants.unwrap().element.shape;
const userFields = tenantFields.users.unwrap().element.shape;
const deviceFields = tenantFields.devices.unwrap().element.shape;
const tokenFields = tenantFields.collectorTokens.unwrap().element.shape;

/** Postgres int4 ids: a bigger number would be a Prisma validation error rather than a clean not_found. */
const id = z
  .string()
  .regex(/^[1-9]\d{0,9}$/, 'must be a positive integer id')
  .transform(Number)
  .pipe(z.number().max(2_147_483_647, 'is not a valid id'));

/** @defaultValue 12 hours, signUserJwt's own default */
export const DEFAULT_JWT_TTL_SECONDS = 12 * 3600;
const ttl = z
  .string()
  .regex(/^[1-9]\d*$/, 'must be a positive number of seconds')
  .transform(Number)
  .pipe(z.number().max(366 * 86_400, 'must be at most a year'));

const str = { type: 'string' } as const;
const bool = { type: 'boolean' } as const;

interface CommandSpec<S extends z.ZodType> {
  /** flags as shown in the usage text */
  usage: string;
  summary: string;
  options: NonNullable<ParseArgsConfig['options']>;
  /** validates the flag values (keyed by flag name) and renames them for the command */
  schema: S;
}
const command = <S extends z.ZodType>(spec: CommandSpec<S>): CommandSpec<S> => spec;

export const COMMANDS = {
  migrate: command({
    usage: '',
    summary: 'create the database if needed and apply pending migrations',
    options: {},
    schema: z.object({}),
  }),
  'tenant create': command({
    usage: '--name N --slug S',
    summary: 'create a tenant',
    options: { name: str, slug: str },
    schema: z.object({ name: tenantFields.name, slug: tenantFields.slug }),
  }),
  'user create': command({
    usage:
      '--email E --name N [--tenant ID] [--role operator|viewer|tenant_admin|platform_admin] [--inactive]',
    summary: 'create a user; without --tenant a platform user',
    options: { email: str, name: str, tenant: str, role: str, inactive: bool },
    schema: z
      .object({
        email: userFields.email,
        name: userFields.name,
        tenant: id.optional(),
        role: userFields.role,
        inactive: z.boolean().default(false),
      })
      .transform((a) => ({
        email: a.email,
        name: a.name,
        tenantId: a.tenant ?? null,
        role: a.role,
        active: !a.inactive,
      })),
  }),
  'user deactivate': command({
    usage: '--id ID',
    summary: 'deactivate a user: their open connections are closed (4009) within a second',
    options: { id: str },
    schema: z.object({ id }),
  }),
  'user move': command({
    usage: '--id ID --tenant ID',
    summary: "move a user to another tenant: they lose the old tenant's channel within a second",
    options: { id: str, tenant: str },
    schema: z.object({ id, tenant: id }).transform((a) => ({ id: a.id, tenantId: a.tenant })),
  }),
  'device create': command({
    usage: '--tenant ID --oui 00D09E --product-class PC --serial SN [--name N]',
    summary: 'create a CPE device owned by a tenant',
    options: { tenant: str, oui: str, 'product-class': str, serial: str, name: str },
    schema: z
      .object({
        tenant: id,
        // CWMP sends the OUI in upper case; accept what people type.
        oui: z
          .string()
          .transform((s) => s.toUpperCase())
          .pipe(deviceFields.oui),
        'product-class': deviceFields.productClass,
        serial: deviceFields.serialNumber,
        name: deviceFields.name,
      })
      .transform((a) => ({
        tenantId: a.tenant,
        oui: a.oui,
        productClass: a['product-class'],
        serialNumber: a.serial,
        name: a.name ?? null,
      })),
  }),
  'share create': command({
    usage: '--user ID --device ID',
    summary: 'share a device with a user (who may belong to another tenant)',
    options: { user: str, device: str },
    schema: z.object({ user: id, device: id }).transform((a) => ({ userId: a.user, deviceId: a.device })),
  }),
  'share delete': command({
    usage: '--user ID --device ID',
    summary: "remove a device's share with a user: the device's later alarms no longer reach them",
    options: { user: str, device: str },
    schema: z.object({ user: id, device: id }).transform((a) => ({ userId: a.user, deviceId: a.device })),
  }),
  'token create': command({
    usage: '--name N [--tenant ID] [--scopes alarms,informs,tasks,campaigns]',
    summary:
      'create a collector token, scoped to a tenant or platform-wide, allowed the given scopes (default: alarms); the token is shown only once',
    options: { name: str, tenant: str, scopes: str },
    schema: z
      .object({
        name: tokenFields.name,
        tenant: id.optional(),
        scopes: z
          .string()
          .transform((s) => s.split(',').map((v) => v.trim()))
          .pipe(CollectorScopes)
          .optional(),
      })
      .transform((a) => ({
        name: a.name,
        tenantId: a.tenant ?? null,
        scopes: a.scopes ?? [...DEFAULT_COLLECTOR_SCOPES],
      })),
  }),
  'token revoke': command({
    usage: '--id ID',
    summary: 'revoke a collector token',
    options: { id: str },
    schema: z.object({ id }),
  }),
  jwt: command({
    usage: '--user ID [--ttl SECONDS]',
    summary: `mint a user JWT for local use, always with an exp (default ttl ${DEFAULT_JWT_TTL_SECONDS} s, at most a year)`,
    options: { user: str, ttl: str },
    schema: z
      .object({ user: id, ttl: ttl.optional() })
      .transform((a) => ({ userId: a.user, ttlSeconds: a.ttl ?? DEFAULT_JWT_TTL_SECONDS })),
  }),
  provision: command({
    usage: '--file graph.json|-',
    summary:
      'create a graph of tenants, users, devices, shares and tokens in one transaction (- reads stdin)',
    options: { file: str },
    schema: z.object({ file: z.string().min(1) }),
  }),
  'preferences get': command({
    usage: '--user ID | --tenant ID',
    summary: "print a user's notification rules, or a tenant's defaults and locks, with their version",
    options: { user: str, tenant: str },
    schema: z
      .object({ user: id.optional(), tenant: id.optional() })
      .refine((a) => (a.user === undefined) !== (a.tenant === undefined), {
        message: 'give exactly one of --user and --tenant',
      })
      .transform((a) => ({ userId: a.user ?? null, tenantId: a.tenant ?? null })),
  }),
  'preferences set': command({
    usage: '--user ID | --tenant ID --file prefs.json|- [--if-version N]',
    summary:
      'replace them with the JSON document in --file (- reads stdin), validated as the API does; with --if-version only if still at that version',
    options: { user: str, tenant: str, file: str, 'if-version': str },
    schema: z
      .object({
        user: id.optional(),
        tenant: id.optional(),
        file: z.string().min(1),
        'if-version': z
          .string()
          .regex(/^\d{1,9}$/, 'must be a version number (0: none stored yet)')
          .transform(Number)
          .optional(),
      })
      .refine((a) => (a.user === undefined) !== (a.tenant === undefined), {
        message: 'give exactly one of --user and --tenant',
      })
      .transform((a) => ({
        userId: a.user ?? null,
        tenantId: a.tenant ?? null,
        file: a.file,
        expected: a['if-version'] ?? ('*' as const),
      })),
  }),
  demo: command({
    usage: '',
    summary: 'create the demo world once; later runs print its ids with fresh JWTs and a fresh token',
    options: {},
    schema: z.object({}),
  }),
};

export type CommandName = keyof typeof COMMANDS;
export type CommandArgs<N extends CommandName> = z.output<(typeof COMMANDS)[N]['schema']>;

export type CommandLine = { kind: 'help' } | { kind: 'run'; name: CommandName; args: unknown };

const GROUPS = new Set(Object.keys(COMMANDS).flatMap((n) => (n.includes(' ') ? [n.split(' ')[0]!] : [])));

export function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length));
  const lines = Object.entries(COMMANDS).map(
    ([name, spec]) =>
      `  ${`${name.padEnd(width)}  ${spec.usage}`.trimEnd()}\n  ${''.padEnd(width)}    ${spec.summary}`,
  );
  return [
    'usage: pnpm -s cli <command> [flags]',
    '',
    'commands:',
    ...lines,
    '',
    'Prints one JSON object on stdout; errors as {"error":{"code","message"}} on stderr.',
    'Exit codes: 0 ok, 1 failed (not_found, conflict, database_*), 2 invalid arguments or environment.',
    'Environment: DATABASE_URL, JWT_SECRET (required with NODE_ENV=production to mint JWTs).',
    '',
  ].join('\n');
}

/**
 * Splits argv into a command and its validated arguments. Throws CliError `invalid_arguments`; nothing in
 * here touches the database.
 */
export function parseCommandLine(argv: readonly string[]): CommandLine {
  if (argv.some((a) => a === '--help' || a === '-h') || argv[0] === 'help') return { kind: 'help' };
  const [first, second] = argv;
  if (first === undefined)
    throw new CliError('invalid_arguments', 'missing command; run with --help for usage');
  const words = GROUPS.has(first) ? 2 : 1;
  const name = words === 2 ? `${first} ${second ?? ''}`.trim() : first;
  if (!isCommandName(name)) {
    const hint =
      words === 2
        ? `${first} takes a subcommand: ${subcommands(first).join(', ')}`
        : 'run with --help for usage';
    throw new CliError('invalid_arguments', `unknown command "${name}"; ${hint}`);
  }
  const spec = COMMANDS[name];
  let values: Record<string, unknown>;
  try {
    values = parseArgs({
      args: argv.slice(words),
      options: spec.options,
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    // node's parseArgs messages are good ("Unknown option '--x'"), but its errors are plain TypeErrors.
    if (err instanceof TypeError && String((err as { code?: unknown }).code).startsWith('ERR_PARSE_ARGS')) {
      throw new CliError('invalid_arguments', `${name}: ${err.message}`);
    }
    throw err;
  }
  const parsed = spec.schema.safeParse(values);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const flag = issue.path[0];
      if (typeof flag !== 'string') return issue.message;
      return values[flag] === undefined ? `--${flag} is required` : `--${flag}: ${issue.message}`;
    });
    throw new CliError('invalid_arguments', `${name}: ${problems.join('; ')}`, { problems });
  }
  return { kind: 'run', name, args: parsed.data };
}

function isCommandName(name: string): name is CommandName {
  return Object.hasOwn(COMMANDS, name);
}

function subcommands(group: string): string[] {
  return Object.keys(COMMANDS)
    .filter((n) => n.startsWith(`${group} `))
    .map((n) => n.slice(group.length + 1));
}
