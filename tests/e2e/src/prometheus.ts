import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './spawned-stack.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

const onPath = (bin: string): boolean => spawnSync('sh', ['-c', `command -v ${bin}`]).status === 0;

/**
 * Debian's prometheus package (with promtool), installed by scripts/lib.sh `ensure_prometheus` when missing
 * (CI's scripts/test.sh has run it already, so this is a no-op there).
 */
export function ensurePrometheus(): void {
  if (onPath('prometheus') && onPath('promtool')) return;
  const r = spawnSync('bash', ['-c', 'source scripts/lib.sh && ensure_prometheus'], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 300_000,
  });
  if (r.status !== 0 || !onPath('prometheus') || !onPath('promtool'))
    throw new Error(`could not install prometheus: ${r.stderr}`);
}

export interface PrometheusServer {
  url: string;
  /** a PromQL instant query: the result vector, or an error naming the query */
  query: (promql: string) => Promise<{ metric: Record<string, string>; value: [number, string] }[]>;
  /** GET an API path, the parsed `data` */
  api: <T>(path: string) => Promise<T>;
  stop: () => Promise<void>;
}

/**
 * A real Prometheus on 127.0.0.1 (free port, temporary directory for its config and TSDB), scraping
 * `targets` every second and evaluating `ruleFiles` every second.
 */
export async function startPrometheus(targets: { job: string; address: string }[], ruleFiles: string[]) {
  const dir = mkdtempSync(join(tmpdir(), 'alarmcast-prometheus-'));
  const port = await freePort();
  const config = {
    global: { scrape_interval: '1s', evaluation_interval: '1s', scrape_timeout: '900ms' },
    rule_files: ruleFiles,
    scrape_configs: targets.map((t) => ({ job_name: t.job, static_configs: [{ targets: [t.address] }] })),
  };
  // JSON is YAML: no YAML writer needed.
  writeFileSync(join(dir, 'prometheus.yml'), JSON.stringify(config, null, 2));
  const child: ChildProcess = spawn(
    'prometheus',
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const output: string[] = [];
  child.stdout!.on('data', (b: Buffer) => output.push(b.toString()));
  child.stderr!.on('data', (b: Buffer) => output.push(b.toString()));
  const url = `http://127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`prometheus exited with ${child.exitCode}:\n${output.join('')}`);
    }
    const ready = await fetch(`${url}/-/ready`).then(
      (r) => r.ok,
      () => false,
    );
    if (ready) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`prometheus did not become ready:\n${output.join('')}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const api = async <T>(path: string): Promise<T> => {
    const res = await fetch(`${url}${path}`);
    const body = (await res.json()) as { status: string; data: T; error?: string };
    if (body.status !== 'success') throw new Error(`${path}: ${body.error ?? res.status}`);
    return body.data;
  };
  const query = async (promql: string) => {
    const data = await api<{
      resultType: string;
      result: { metric: Record<string, string>; value: [number, string] }[];
    }>(`/api/v1/query?query=${encodeURIComponent(promql)}`).catch((err: Error) => {
      throw new Error(`${promql}: ${err.message}`);
    });
    if (data.resultType !== 'vector') throw new Error(`${promql}: a ${data.resultType}, not a vector`);
    return data.result;
  };
  return { url, query, api, stop } satisfies PrometheusServer;
}

/** `promtool <args>`: exit code and output. */
export function promtool(...args: string[]): { status: number | null; output: string } {
  const r = spawnSync('promtool', args, { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

/**
 * An alert rule's expression as `<signal> <op> <threshold>`: the signal must return series whenever the
 * services run (that is what can be checked without the fault), the whole expression only be valid.
 */
export function splitAlertExpr(expr: string): { signal: string; op: string; threshold: number } | null {
  const m = /^([\s\S]+?)\s*(>=|<=|==|!=|>|<)\s*(-?\d+(?:\.\d+)?(?:e-?\d+)?)\s*$/.exec(expr.trim());
  if (!m) return null;
  // The comparison must be the top-level one: the signal's brackets balance.
  const signal = m[1]!;
  let depth = 0;
  for (const ch of signal) {
    if ('([{'.includes(ch)) depth++;
    if (')]}'.includes(ch)) depth--;
  }
  return depth === 0 ? { signal, op: m[2]!, threshold: Number(m[3]) } : null;
}
