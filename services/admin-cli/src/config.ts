import { DEV_JWT_SECRET, productionSecretProblem } from '@alarmcast/auth';
import { commonEnv, unsetIfEmpty } from '@alarmcast/service';
import { z } from 'zod';
import { CliError } from './errors.js';

// A variable set to the empty string (`JWT_SECRET=` in a .env file) counts as unset, as in the services.
const optional = <T extends z.ZodType>(schema: T) => unsetIfEmpty(schema.optional());

const CliEnv = z.object({
  NODE_ENV: commonEnv.NODE_ENV,
  DATABASE_URL: commonEnv.DATABASE_URL,
  JWT_SECRET: optional(z.string()),
  INIT_CWD: optional(z.string()),
});

export interface CliConfig {
  /** @defaultValue 'postgresql://postgres@127.0.0.1:5432/alarmcast' */
  databaseUrl: string;
  /**
   * HS256 key for the user JWTs that `jwt`, `provision` and `demo` mint; it must be the key of the ws-edge
   * that will check them. @defaultValue DEV_JWT_SECRET, except in production where it stays null and those
   * commands refuse to run (the other commands need no key, so a missing one does not stop them).
   */
  jwtSecret: string | null;
  /**
   * Where relative `--file` paths resolve. `pnpm cli` runs us from the package directory and passes the
   * directory the command was typed in as INIT_CWD, which is the one the user means.
   * @defaultValue INIT_CWD, else the process's working directory
   */
  cwd: string;
}

/** Parses the CLI's environment once at start; throws CliError `invalid_config` listing every problem. */
export function parseCliConfig(env: NodeJS.ProcessEnv, processCwd: string = process.cwd()): CliConfig {
  const parsed = CliEnv.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    throw new CliError('invalid_config', `invalid environment: ${problems.join('; ')}`, { problems });
  }
  const e = parsed.data;
  const production = e.NODE_ENV === 'production';
  // An unset key only stops the commands that mint JWTs (requireJwtSecret); a bad one stops everything.
  const problem =
    production && e.JWT_SECRET !== undefined
      ? productionSecretProblem(e.JWT_SECRET, DEV_JWT_SECRET, true)
      : null;
  if (problem) throw new CliError('invalid_config', `JWT_SECRET ${problem}`);
  return {
    databaseUrl: e.DATABASE_URL,
    jwtSecret: e.JWT_SECRET ?? (production ? null : DEV_JWT_SECRET),
    cwd: e.INIT_CWD ?? processCwd,
  };
}

/** The JWT key, for the commands that mint JWTs; called before they write anything. */
export function requireJwtSecret(config: CliConfig): string {
  if (config.jwtSecret === null) {
    throw new CliError('invalid_config', 'JWT_SECRET is required when NODE_ENV=production to mint user JWTs');
  }
  return config.jwtSecret;
}
