/** An SVG line chart of latency percentiles against throughput, one point per load level. */
export interface ChartPoint {
  label: string;
  throughput: number;
  p50: number;
  p99: number;
}

export function latencyThroughputSvg(title: string, points: readonly ChartPoint[]): string {
  const width = 640;
  const height = 400;
  const margin = { left: 64, right: 24, top: 40, bottom: 52 };
  const maxX = Math.max(1, ...points.map((p) => p.throughput)) * 1.1;
  const maxY = Math.max(1, ...points.map((p) => p.p99)) * 1.1;
  const x = (v: number) => margin.left + (v / maxX) * (width - margin.left - margin.right);
  const y = (v: number) => height - margin.bottom - (v / maxY) * (height - margin.top - margin.bottom);
  const line = (key: 'p50' | 'p99') => points.map((p, i) => `${i ? 'L' : 'M'}${x(p.throughput).toFixed(1)},${y(p[key]).toFixed(1)}`).join(' ');
  const ticks = (max: number) => Array.from({ length: 5 }, (_, i) => (max * (i + 1)) / 5);
  const esc = (s: string) => s.replace(/[<>&"]/g, (c) => `&#${c.charCodeAt(0)};`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="${width / 2}" y="22" text-anchor="middle" font-size="15">${esc(title)}</text>
<line x1="${margin.left}" y1="${height - margin.bottom}" x2="${width - margin.right}" y2="${height - margin.bottom}" stroke="black"/>
<line x1="${margin.left}" y1="${margin.top}" x2="${margin.left}" y2="${height - margin.bottom}" stroke="black"/>
${ticks(maxX).map((t) => `<text x="${x(t).toFixed(1)}" y="${height - margin.bottom + 16}" text-anchor="middle">${t.toFixed(0)}</text>`).join('\n')}
${ticks(maxY).map((t) => `<text x="${margin.left - 6}" y="${(y(t) + 4).toFixed(1)}" text-anchor="end">${t.toFixed(1)}</text><line x1="${margin.left}" y1="${y(t).toFixed(1)}" x2="${width - margin.right}" y2="${y(t).toFixed(1)}" stroke="#eee"/>`).join('\n')}
<text x="${width / 2}" y="${height - 12}" text-anchor="middle">throughput (inferences/s)</text>
<text x="16" y="${height / 2}" text-anchor="middle" transform="rotate(-90 16 ${height / 2})">latency (ms)</text>
<path d="${line('p50')}" fill="none" stroke="#1f77b4" stroke-width="2"/>
<path d="${line('p99')}" fill="none" stroke="#d62728" stroke-width="2"/>
${points.map((p) => `<circle cx="${x(p.throughput).toFixed(1)}" cy="${y(p.p50).toFixed(1)}" r="3" fill="#1f77b4"/><circle cx="${x(p.throughput).toFixed(1)}" cy="${y(p.p99).toFixed(1)}" r="3" fill="#d62728"/><text x="${(x(p.throughput) + 5).toFixed(1)}" y="${(y(p.p99) - 6).toFixed(1)}" fill="#555">${esc(p.label)}</text>`).join('\n')}
<text x="${width - margin.right - 90}" y="${margin.top + 4}" fill="#1f77b4">— p50</text>
<text x="${width - margin.right - 40}" y="${margin.top + 4}" fill="#d62728">— p99</text>
</svg>
`;
}
