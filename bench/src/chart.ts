/** An SVG chart of items/s against concurrency: one panel per model, one line per system. */
export interface Series {
  label: string;
  colour: string;
  points: { concurrency: number; itemsPerSecond: number }[];
}

export interface Panel {
  title: string;
  series: Series[];
}

const esc = (s: string) => s.replace(/[<>&"]/g, (c) => `&#${c.charCodeAt(0)};`);

function niceMax(value: number): number {
  const magnitude = 10 ** Math.floor(Math.log10(Math.max(1, value)));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * magnitude >= value) return step * magnitude;
  return 10 * magnitude;
}

function panel(p: Panel, left: number, top: number, width: number, height: number): string {
  const margin = { left: 78, right: 16, top: 48, bottom: 44 };
  const levels = [...new Set(p.series.flatMap((s) => s.points.map((pt) => pt.concurrency)))].sort((a, b) => a - b);
  const maxY = niceMax(Math.max(1, ...p.series.flatMap((s) => s.points.map((pt) => pt.itemsPerSecond))) * 1.05);
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  // Concurrency on a log scale: the levels are powers of a few.
  const lo = Math.log2(levels[0] ?? 1);
  const hi = Math.log2(levels.at(-1) ?? 2);
  const x = (c: number) => left + margin.left + (hi === lo ? plotW / 2 : ((Math.log2(c) - lo) / (hi - lo)) * plotW);
  const y = (v: number) => top + margin.top + plotH - (v / maxY) * plotH;
  const parts: string[] = [];
  parts.push(`<text x="${left + width / 2}" y="${top + 18}" text-anchor="middle" font-size="14">${esc(p.title)}</text>`);
  for (let i = 0; i <= 5; i++) {
    const v = (maxY * i) / 5;
    parts.push(`<line x1="${left + margin.left}" y1="${y(v).toFixed(1)}" x2="${left + width - margin.right}" y2="${y(v).toFixed(1)}" stroke="${i ? '#eee' : 'black'}"/>`);
    parts.push(`<text x="${left + margin.left - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${Math.round(v)}</text>`);
  }
  for (const level of levels) parts.push(`<text x="${x(level).toFixed(1)}" y="${top + height - margin.bottom + 16}" text-anchor="middle">${level}</text>`);
  parts.push(`<text x="${left + margin.left + plotW / 2}" y="${top + height - 8}" text-anchor="middle">concurrency (requests in flight)</text>`);
  parts.push(`<text x="${left + 14}" y="${top + margin.top + plotH / 2}" text-anchor="middle" transform="rotate(-90 ${left + 14} ${top + margin.top + plotH / 2})">items/s</text>`);
  p.series.forEach((s, i) => {
    const points = [...s.points].sort((a, b) => a.concurrency - b.concurrency);
    parts.push(`<path d="${points.map((pt, j) => `${j ? 'L' : 'M'}${x(pt.concurrency).toFixed(1)},${y(pt.itemsPerSecond).toFixed(1)}`).join(' ')}" fill="none" stroke="${s.colour}" stroke-width="2"/>`);
    for (const pt of points) parts.push(`<circle cx="${x(pt.concurrency).toFixed(1)}" cy="${y(pt.itemsPerSecond).toFixed(1)}" r="3" fill="${s.colour}"/>`);
    // The legend sits in one row above the plot, where no line can run through it.
    parts.push(`<text x="${left + margin.left + i * 120}" y="${top + 36}" fill="${s.colour}">— ${esc(s.label)}</text>`);
  });
  return parts.join('\n');
}

export function throughputSvg(title: string, panels: readonly Panel[]): string {
  const width = 460;
  const height = 340;
  const total = width * panels.length;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${total}" height="${height + 30}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="${total / 2}" y="20" text-anchor="middle" font-size="15">${esc(title)}</text>
${panels.map((p, i) => panel(p, i * width, 30, width, height)).join('\n')}
</svg>
`;
}
