/**
 * Summarizes V8 CPU profiles (`pnpm bench ... --profile <dir>` writes one per service process): the
 * functions with the most self time, and the same as inclusive time, which is what a flame graph shows as
 * width. The .cpuprofile files themselves open in Chrome DevTools (Performance) or speedscope.
 *
 *   pnpm bench:profile <file.cpuprofile>... [--top 25]
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { top: { type: 'string', default: '25' } },
});

for (const file of positionals) {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const label = (n: ProfileNode) => {
    const f = n.callFrame;
    const where = f.url
      ? `${f.url.replace(/^.*node_modules\//, '').replace(/^.*\/work\/main\//, '')}:${f.lineNumber + 1}`
      : '';
    return `${f.functionName || '(anonymous)'} ${where}`.trim();
  };
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const us = profile.timeDeltas[i] ?? 0;
    total += us;
    const node = byId.get(id)!;
    self.set(label(node), (self.get(label(node)) ?? 0) + us);
    // Each frame once per sample, however deep the recursion.
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const l = label(byId.get(cur)!);
      if (!seen.has(l)) inclusive.set(l, (inclusive.get(l) ?? 0) + us);
      seen.add(l);
    }
  });
  const idle = self.get('(idle)') ?? 0;
  const busy = total - idle;
  const top = (m: Map<string, number>) =>
    [...m]
      .filter(([l]) => !['(idle)', '(root)', '(program)'].includes(l))
      .sort((a, b) => b[1] - a[1])
      .slice(0, Number(values.top))
      .map(
        ([l, us]) =>
          `  ${((100 * us) / busy).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(6)} ms  ${l}`,
      )
      .join('\n');
  console.log(
    `\n${basename(file)}: ${(total / 1e6).toFixed(1)} s profiled, ${(busy / 1e6).toFixed(1)} s busy`,
  );
  console.log(`self time (% of busy):\n${top(self)}`);
  console.log(`inclusive time (% of busy):\n${top(inclusive)}`);
}
