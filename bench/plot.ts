// A line plot as a standalone SVG: the soak's memory over time, readable in any browser or
// in the repository's web view, with no plotting library.

export type Series = { name: string; color: string; points: Array<[number, number]> };

export type PlotOptions = { title: string; xLabel: string; yLabel: string; width?: number; height?: number; bands?: Array<{ from: number; to: number; label: string }> };

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Round-number ticks between 0 and `max`. */
function ticks(max: number, count = 5): number[] {
  if (max <= 0) return [0];
  const raw = max / count;
  const step = [1, 2, 5, 10].map((m) => m * 10 ** Math.floor(Math.log10(raw))).find((s) => s >= raw)!;
  const out: number[] = [];
  for (let v = 0; v <= max + 1e-9; v += step) out.push(v);
  return out;
}

/** The series drawn against a common x and y axis from 0; `bands` shade stretches of x (the thirds of a soak). */
export function svgPlot(series: Series[], o: PlotOptions): string {
  const W = o.width ?? 900;
  const H = o.height ?? 420;
  const m = { l: 70, r: 20, t: 56, b: 50 };
  const all = series.flatMap((s) => s.points);
  const xMax = Math.max(1, ...all.map((p) => p[0]));
  const yMax = Math.max(1, ...all.map((p) => p[1])) * 1.1;
  const x = (v: number) => m.l + (v / xMax) * (W - m.l - m.r);
  const y = (v: number) => H - m.b - (v / yMax) * (H - m.t - m.b);
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">${esc(o.title)}</text>`);
  for (const [i, b] of (o.bands ?? []).entries()) {
    out.push(`<rect x="${x(b.from)}" y="${m.t}" width="${x(b.to) - x(b.from)}" height="${H - m.t - m.b}" fill="${i % 2 ? '#f4f4f4' : '#e8eef8'}"/>`);
    out.push(`<text x="${(x(b.from) + x(b.to)) / 2}" y="${m.t + 14}" text-anchor="middle" fill="#555">${esc(b.label)}</text>`);
  }
  for (const t of ticks(yMax)) {
    out.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${y(t)}" y2="${y(t)}" stroke="#ddd"/>`);
    out.push(`<text x="${m.l - 6}" y="${y(t) + 4}" text-anchor="end">${t}</text>`);
  }
  for (const t of ticks(xMax)) out.push(`<text x="${x(t)}" y="${H - m.b + 16}" text-anchor="middle">${t}</text>`);
  out.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${H - m.b}" y2="${H - m.b}" stroke="#333"/><line x1="${m.l}" x2="${m.l}" y1="${m.t}" y2="${H - m.b}" stroke="#333"/>`);
  out.push(`<text x="${(m.l + W - m.r) / 2}" y="${H - 12}" text-anchor="middle">${esc(o.xLabel)}</text>`);
  out.push(`<text transform="translate(18 ${(m.t + H - m.b) / 2}) rotate(-90)" text-anchor="middle">${esc(o.yLabel)}</text>`);
  for (const [i, s] of series.entries()) {
    if (s.points.length) out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="1.6" points="${s.points.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(' ')}"/>`);
    out.push(`<rect x="${m.l + 10 + i * 180}" y="30" width="12" height="12" fill="${s.color}"/><text x="${m.l + 28 + i * 180}" y="40">${esc(s.name)}</text>`);
  }
  out.push('</svg>');
  return out.join('\n') + '\n';
}
