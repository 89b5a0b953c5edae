import { describe, expect, it } from 'vitest';
import { DEV_JWT_SECRET } from '@alarmcast/auth';
import { parseCliConfig, requireJwtSecret } from '../src/config.js';
import { parseCommandLine, usage } from '../src/args.js';
import { CliError } from '../src/errors.js';

const invalid = (code: string) => expect.objectContaining({ name: 'CliError', code });

describe('parseCliConfig', () => {
  it('defaults to the local database and the development JWT key', () => {
    expect(parseCliConfig({}, '/here')).toEqual({
      databaseUrl: 'postgresql://postgres@127.0.0.1:5432/alarmcast',
      jwtSecret: DEV_JWT_SECRET,
      cwd: '/here',
    });
  });

  it('treats empty variables as unset and resolves files from INIT_CWD', () => {
    const config = parseCliConfig({ DATABASE_URL: '', JWT_SECRET: ' ', INIT_CWD: '/typed/here' }, '/pkg');
    expect(config).toMatchObject({ jwtSecret: DEV_JWT_SECRET, cwd: '/typed/here' });
  });

  it('rejects a DATABASE_URL that is not a Postgres URL', () => {
    expect(() => parseCliConfig({ DATABASE_URL: 'redis://127.0.0.1:6379' })).toThrow(
      invalid('invalid_config'),
    );
  });

  it('has no JWT key in production unless one is given, and refuses weak ones', () => {
    const config = parseCliConfig({ NODE_ENV: 'production' });
    expect(config.jwtSecret).toBeNull();
    expect(() => requireJwtSecret(config)).toThrow(invalid('invalid_config'));
    expect(() => parseCliConfig({ NODE_ENV: 'production', JWT_SECRET: DEV_JWT_SECRET })).toThrow(
      /development default/,
    );
    expect(() => parseCliConfig({ NODE_ENV: 'production', JWT_SECRET: 'short' })).toThrow(/32 characters/);
    const key = 'x'.repeat(32);
    expect(requireJwtSecret(parseCliConfig({ NODE_ENV: 'production', JWT_SECRET: key }))).toBe(key);
  });
});

describe('parseCommandLine', () => {
  const problem = (argv: string[]): string => {
    try {
      parseCommandLine(argv);
    } catch (err) {
      expect(err).toBeInstanceOf(CliError);
      expect((err as CliError).code).toBe('invalid_arguments');
      return (err as CliError).message;
    }
    throw new Error(`accepted ${argv.join(' ')}`);
  };

  it('validates and renames flags', () => {
    expect(
      parseCommandLine([
        'device',
        'create',
        '--tenant',
        '7',
        '--oui',
        '00d09e',
        '--product-class',
        'IGD',
        '--serial',
        'S1',
      ]),
    ).toEqual({
      kind: 'run',
      name: 'device create',
      args: { tenantId: 7, oui: '00D09E', productClass: 'IGD', serialNumber: 'S1', name: null },
    });
    expect(
      parseCommandLine(['user', 'create', '--email', 'a@b.example', '--name', 'A', '--inactive']),
    ).toMatchObject({
      args: { tenantId: null, role: 'operator', active: false },
    });
    expect(parseCommandLine(['jwt', '--user', '3'])).toMatchObject({
      args: { userId: 3, ttlSeconds: 43_200 },
    });
    expect(parseCommandLine(['provision', '--file', '-'])).toMatchObject({ args: { file: '-' } });
    expect(parseCommandLine(['user', 'create', '--help'])).toEqual({ kind: 'help' });
    expect(usage()).toMatch(/provision\s+--file graph\.json\|-/);
  });

  it('names the flag that is wrong', () => {
    expect(problem(['tenant', 'create', '--name', 'A'])).toMatch(/--slug is required/);
    expect(problem(['tenant', 'create', '--name', 'A', '--slug', 'Not A Slug'])).toMatch(/--slug:/);
    expect(problem(['user', 'deactivate', '--id', '0'])).toMatch(/--id: must be a positive integer id/);
    expect(problem(['user', 'deactivate', '--id', '99999999999'])).toMatch(/--id/);
    expect(problem(['user', 'create', '--email', 'nope', '--name', 'A'])).toMatch(/--email/);
    expect(problem(['user', 'create', '--email', 'a@b.example', '--name', 'A', '--role', 'root'])).toMatch(
      /--role/,
    );
    expect(
      problem(['device', 'create', '--tenant', '1', '--oui', 'XYZ', '--product-class', 'P', '--serial', 'S']),
    ).toMatch(/--oui/);
    expect(problem(['jwt', '--user', '1', '--ttl', '-5'])).toMatch(/ttl/);
    expect(problem(['token', 'create', '--name', 'n', 'extra'])).toMatch(/positional/i);
    expect(problem(['tenant', 'create', '--name', 'A', '--slug', 'a', '--color', 'red'])).toMatch(/--color/);
    expect(problem(['tenant', 'remove', '--slug', 'x'])).toMatch(/unknown command "tenant remove"/);
    expect(problem(['token'])).toMatch(/takes a subcommand: create, revoke/);
    expect(problem([])).toMatch(/missing command/);
  });
});
