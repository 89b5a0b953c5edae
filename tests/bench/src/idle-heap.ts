/**
 * Where an idle connection's memory goes, on alarmcast's edge (issue 17's "measure where it goes"): one
 * edge process (EDGE_WORKERS=1), a V8 heap snapshot before and after connecting `--sockets` subscribed
 * sockets that receive nothing, and the difference per connection by kind of object (constructor name for
 * objects and closures, V8's category otherwise), largest first.
 *
 *   cd tests/bench && npx tsx --conditions=source src/idle-heap.ts [--sockets 5000] [--top 30]
 *
 * It counts the JavaScript heap only. The RSS figure of `pnpm bench capacity` (src/idle-memory.ts) adds what
 * lives outside it (libuv handles, ws buffers) and whatever the young generation grew to during the
 * handshakes, which is why the two differ. Writes nothing but the two snapshots in a temporary directory,
 * removed at the end.
 */
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { provisionWorld } from './bench-world.js';
import { connectAll } from './load.js';
import { startSystem } from './stacks.js';

const { values } = parseArgs({
  options: { sockets: { type: 'string', default: '5000' }, top: { type: 'string', default: '30' } },
});
const sockets = Number(values.sockets);
const top = Number(values.top);
process.env.EDGE_WORKERS = '1';
process.env.INGEST_WORKERS = '1';

const dir = await mkdtemp(join(tmpdir(), 'alarmcast-idle-heap-'));
const world = await provisionWorld('alarmcast_bench_big', {
  tenants: 1,
  usersPerTenant: Math.max(sockets, 10_000),
  devicesPerTenant: 10,
  shareEveryNthUser: 0,
  sharesPerSharer: 0,
});
const sys = await startSystem('alarmcast', world.databaseUrl, undefined, {
  nodeArgs: ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${dir}`],
});
const edgePid = sys.socketServer.child.pid!;

/** Signals the edge and waits for its snapshot file to be complete (its size stops changing). */
async function snapshot(): Promise<string> {
  const before = new Set(await readdir(dir));
  process.kill(edgePid, 'SIGUSR2');
  for (let last = -1; ;) {
    await new Promise((r) => setTimeout(r, 1000));
    const file = (await readdir(dir)).find((f) => !before.has(f) && f.endsWith('.heapsnapshot'));
    if (!file) continue;
    const text = await readFile(join(dir, file), 'utf8');
    if (text.length === last && text.endsWith('}')) return text;
    last = text.length;
  }
}

/** bytes and count per kind of object in a snapshot */
function byKind(text: string): Map<string, { count: number; bytes: number }> {
  const s = JSON.parse(text) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
    nodes: number[];
    strings: string[];
  };
  const fields = s.snapshot.meta.node_fields;
  const types = s.snapshot.meta.node_types[0];
  const [typeAt, nameAt, sizeAt] = ['type', 'name', 'self_size'].map((f) => fields.indexOf(f));
  const out = new Map<string, { count: number; bytes: number }>();
  for (let i = 0; i < s.nodes.length; i += fields.length) {
    const type = types[s.nodes[i + typeAt!]!]!;
    const named = type === 'object' || type === 'closure';
    const kind = named ? `${s.strings[s.nodes[i + nameAt!]!] || '(anonymous)'} (${type})` : `(${type})`;
    const e = out.get(kind) ?? { count: 0, bytes: 0 };
    e.count += 1;
    e.bytes += s.nodes[i + sizeAt!]!;
    out.set(kind, e);
  }
  return out;
}

try {
  await new Promise((r) => setTimeout(r, 3000));
  const before = byKind(await snapshot());
  const connected = await connectAll(sys.connect, world.userIds.slice(0, sockets), () => {});
  await new Promise((r) => setTimeout(r, 3000));
  const after = byKind(await snapshot());
  const rows = [...after].map(([kind, a]) => {
    const b = before.get(kind) ?? { count: 0, bytes: 0 };
    return {
      kind,
      perSocket: (a.count - b.count) / connected.length,
      bytes: (a.bytes - b.bytes) / connected.length,
    };
  });
  rows.sort((x, y) => y.bytes - x.bytes);
  const total = rows.reduce((n, r) => n + r.bytes, 0);
  console.log(`${connected.length} idle sockets: ${Math.round(total)} bytes of JS heap each`);
  console.log('| kind | per socket | bytes per socket |\n|---|---:|---:|');
  for (const r of rows.slice(0, top))
    console.log(`| ${r.kind} | ${r.perSocket.toFixed(2)} | ${Math.round(r.bytes)} |`);
  for (const s of connected) s.close();
} finally {
  await sys.close();
  await rm(dir, { recursive: true, force: true });
}
process.exit(0);
