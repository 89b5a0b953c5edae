import { Prisma } from '@alarmcast/db';

/**
 * Stable error codes of the CLI, printed as `{ "error": { "code", "message", "details"? } }` on stderr, and
 * the exit code of each. Scripts branch on the code (or the exit code), never on the message.
 * 2 means "the command line or environment is wrong, nothing was attempted"; 1 means it ran and failed.
 */
export const EXIT_CODES = {
  invalid_arguments: 2,
  invalid_config: 2,
  not_found: 1,
  conflict: 1,
  database_unavailable: 1,
  database_not_migrated: 1,
  internal_error: 1,
} as const;
export type CliErrorCode = keyof typeof EXIT_CODES;

export class CliError extends Error {
  override name = 'CliError';
  constructor(
    readonly code: CliErrorCode,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

export interface CliErrorBody {
  error: { code: CliErrorCode; message: string; details?: unknown };
}

export function errorBody(err: CliError): CliErrorBody {
  return {
    error: {
      code: err.code,
      message: err.message,
      ...(err.details === undefined ? {} : { details: err.details }),
    },
  };
}

// Prisma's own messages quote our source code and the failing call; people need the rule that was broken.
const UNIQUE_MESSAGES: Record<string, string> = {
  tenants_slug_key: 'a tenant with this slug already exists',
  users_email_key: 'a user with this email already exists',
  cpe_devices_oui_product_class_serial_number_key:
    'a device with this OUI, product class and serial number already exists',
  user_devices_pkey: 'this device is already shared with this user',
};

const MIGRATE_HINT = 'run `pnpm cli migrate` first';

/** Maps anything thrown by a command to a CliError; the one place where errors get their codes. */
export function toCliError(err: unknown): CliError {
  if (err instanceof CliError) return err;
  if (err instanceof Prisma.PrismaClientKnownRequestError) return fromPrisma(err);
  const code = (err as { code?: unknown } | null)?.code;
  // pg (used directly by migrate) and node's socket errors, before Prisma is involved.
  if (typeof code === 'string' && isConnectionErrorCode(code)) {
    const message = err instanceof Error && err.message ? err.message : code;
    return new CliError('database_unavailable', `cannot reach Postgres: ${message}`);
  }
  if (err instanceof Prisma.PrismaClientInitializationError) {
    return new CliError('database_unavailable', `cannot reach Postgres: ${err.message}`);
  }
  // Not a user mistake but a bug or an outage: the stack is what whoever looks at it will need.
  const message = err instanceof Error ? err.message : String(err);
  return new CliError('internal_error', message, err instanceof Error ? { stack: err.stack } : undefined);
}

function fromPrisma(err: Prisma.PrismaClientKnownRequestError): CliError {
  const cause = (err.meta?.driverAdapterError as { cause?: AdapterCause } | undefined)?.cause;
  const constraint = cause?.constraint?.index;
  switch (err.code) {
    case 'P2002':
      return new CliError(
        'conflict',
        (constraint && UNIQUE_MESSAGES[constraint]) ??
          `already exists (${constraint ?? 'unique constraint'})`,
      );
    case 'P2003': {
      // Foreign keys are named <table>_<column>_id_fkey by Prisma: the column says what was missing.
      const what = constraint?.match(/_([a-z]+)_id_fkey$/)?.[1] ?? 'referenced row';
      return new CliError('not_found', `no ${what} with the given id`);
    }
    case 'P2025': {
      const model = typeof err.meta?.modelName === 'string' ? err.meta.modelName : 'record';
      return new CliError(
        'not_found',
        `no ${model.replace(/\B([A-Z])/g, ' $1').toLowerCase()} with the given id`,
      );
    }
    case 'P2021':
      return new CliError('database_not_migrated', `the database has no alarmcast tables: ${MIGRATE_HINT}`);
    case 'P1003':
      return new CliError('database_not_migrated', `the database does not exist: ${MIGRATE_HINT}`);
    case 'P1000':
    case 'P1001':
    case 'P1002':
    case 'P1017':
      return new CliError('database_unavailable', `cannot reach Postgres (${cause?.kind ?? err.code})`);
    default:
      return new CliError('internal_error', `${err.code}: ${cause?.originalMessage ?? err.message}`);
  }
}

interface AdapterCause {
  kind?: string;
  originalMessage?: string;
  constraint?: { index?: string };
}

function isConnectionErrorCode(code: string): boolean {
  // SQLSTATE classes 08 (connection exception) and 28 (invalid authorization), and socket errors.
  return (
    /^(08|28)[0-9A-Z]{3}$/.test(code) ||
    ['ECONNREFUSED', 'ENOTFOUND', 'ETIMEDOUT', 'EHOSTUNREACH', 'ECONNRESET'].includes(code)
  );
}
