/**
 * Latency distribution chart as a standalone SVG (no plotting dependency): for each series, the latency
 * (x, log scale) under which a given share of deliveries arrived (y, on a tail scale where p50, p90 and p99
 * are equally far apart, so the tail gets as much room as the median). Further left is faster; a long tail
 * shows as a curve bending right near the top. The Socket.IO peer's series are dashed.
 */
export interface CdfSeries {
  name: string;
  /** 100 points: the latency at 1%, 2%, ... 100% of deliveries, in ms */
  cdf: number[];
}

const COLOURS = [
  '#1f77b4',
  '#d62728',
  '#2ca02c',
  '#ff7f0e',
  '#9467bd',
  '#8c564b',
  '#17becf',
  '#7f7f7f',
  '#bcbd22',
  '#e377c2',
];

/** -log10 of the share still to come: p50 → 0.3, p90 → 1, p99 → 2; the last point (max) is drawn at 2.3. */
const TAIL_TOP = 2.3;
const tail = (share: number) => Math.min(TAIL_TOP, -Math.log10(Math.max(1e-9, 1 - share)));

export function latencyCdfSvg(title: string, series: CdfSeries[]): string {
  const W = 1040;
  const H = 420;
  // The legend sits right of the plot, so it never hides a curve.
  const m = { left: 60, right: 300, top: 40, bottom: 50 };
  const values = series.flatMap((s) => s.cdf).filter((v) => Number.isFinite(v) && v > 0);
  const lo = 10 ** Math.floor(Math.log10(Math.max(0.1, Math.min(...values))));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(...values, lo * 10)));
  const x = (ms: number) =>
    m.left +
    ((Math.log10(Math.max(ms, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) *
      (W - m.left - m.right);
  const y = (share: number) => H - m.bottom - (tail(share) / TAIL_TOP) * (H - m.top - m.bottom);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${(m.left + W - m.right) / 2}" y="22" text-anchor="middle" font-size="15">${escape(title)}</text>`,
  ];
  for (let d = lo; d <= hi; d *= 10) {
    for (const k of [1, 2, 5]) {
      const v = d * k;
      if (v > hi) break;
      out.push(
        `<line x1="${x(v)}" x2="${x(v)}" y1="${m.top}" y2="${H - m.bottom}" stroke="#ddd"/>`,
        `<text x="${x(v)}" y="${H - m.bottom + 16}" text-anchor="middle">${v >= 1 ? v : v.toFixed(1)}</text>`,
      );
    }
  }
  for (const [share, name] of [
    [0, 'p0'],
    [0.5, 'p50'],
    [0.9, 'p90'],
    [0.99, 'p99'],
    [1, 'max'],
  ] as const) {
    out.push(
      `<line x1="${m.left}" x2="${W - m.right}" y1="${y(share)}" y2="${y(share)}" stroke="#ddd"/>`,
      `<text x="${m.left - 6}" y="${y(share) + 4}" text-anchor="end">${name}</text>`,
    );
  }
  out.push(
    `<text x="${(m.left + W - m.right) / 2}" y="${H - 12}" text-anchor="middle">POST sent → frame received (ms, log scale)</text>`,
    `<rect x="${m.left}" y="${m.top}" width="${W - m.left - m.right}" height="${H - m.top - m.bottom}" fill="none" stroke="#444"/>`,
  );
  const legend = { x: W - m.right + 16, y: m.top };
  out.push(
    `<rect x="${legend.x - 6}" y="${legend.y - 4}" width="292" height="${series.length * 18 + 6}" fill="white" fill-opacity="0.85"/>`,
  );
  series.forEach((s, i) => {
    const colour = COLOURS[i % COLOURS.length]!;
    const dash = s.name.includes('socketio') ? ' stroke-dasharray="6 3"' : '';
    const points = s.cdf
      .map((ms, k) =>
        Number.isFinite(ms) ? `${x(ms).toFixed(1)},${y((k + 1) / s.cdf.length).toFixed(1)}` : '',
      )
      .filter(Boolean)
      .join(' ');
    out.push(
      `<polyline points="${points}" fill="none" stroke="${colour}" stroke-width="2"${dash}/>`,
      `<line x1="${legend.x}" x2="${legend.x + 18}" y1="${legend.y + 6 + i * 18}" y2="${legend.y + 6 + i * 18}" stroke="${colour}" stroke-width="3"${dash}/>`,
      `<text x="${legend.x + 24}" y="${legend.y + 10 + i * 18}">${escape(s.name)}</text>`,
    );
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

const escape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
