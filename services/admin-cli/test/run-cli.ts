import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const PACKAGE_DIR = fileURLToPath(new URL('..', import.meta.url));
export const TEST_JWT_SECRET = 'admin-cli-test-secret-of-at-least-32-chars';

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** stdout parsed, when the run succeeded and printed JSON */
  json: Record<string, unknown>;
  /** stderr's error body, when it failed and printed one (a stack trace leaves it undefined) */
  error: { code: string; message: string; details?: unknown } | undefined;
}

/**
 * Runs the real CLI as `pnpm cli` would, in a child process. The environment is built from scratch so that
 * the developer's own DATABASE_URL, JWT_SECRET or INIT_CWD never leak into a test.
 */
export function runCli(
  args: string[],
  options: { databaseUrl: string; env?: Record<string, string>; stdin?: string },
): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--conditions=source', '--import', 'tsx', 'src/main.ts', ...args],
      {
        cwd: PACKAGE_DIR,
        env: {
          PATH: process.env.PATH ?? '',
          DATABASE_URL: options.databaseUrl,
          JWT_SECRET: TEST_JWT_SECRET,
          ...options.env,
        },
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => {
      const json = code === 0 ? ((parseJson(stdout) as Record<string, unknown> | undefined) ?? {}) : {};
      const error =
        code !== 0 ? (parseJson(stderr) as { error?: CliRun['error'] } | undefined)?.error : undefined;
      resolve({ code, stdout, stderr, json, error });
    });
    child.stdin.end(options.stdin ?? '');
  });
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
