// Draws infra/grafana/gemello.json as HTML (its grid, panel types, titles, units and legends)
// with the values evaluate() computes: a stand-in for Grafana, for the README's picture.
import type { Result, Series } from './promql.ts';
import { evaluate } from './promql.ts';

type Panel = { type: string; title: string; gridPos: { x: number; y: number; w: number; h: number }; fieldConfig?: any; targets?: Array<{ expr: string; legendFormat: string }> };

const COLORS = ['#73bf69', '#f2cc0c', '#8ab8ff', '#ff780a', '#f2495c', '#5794f2', '#b877d9', '#fade2a'];
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
const legend = (fmt: string, labels: Record<string, string>) => (fmt === '__auto' ? Object.values(labels).join(' ') : fmt.replace(/\{\{\s*(\w+)\s*\}\}/g, (_, k) => labels[k] ?? ''));

function fmt(v: number, unit: string): string {
  if (!Number.isFinite(v)) return '–';
  const n = v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
  return unit === 'ms' ? `${n} ms` : unit === 'reqps' ? `${n} req/s` : unit === 'ops' ? `${n} ops/s` : n;
}

function chart(lines: Array<{ name: string; points: Array<{ t: number; v: number }> }>, w: number, h: number, t0: number, t1: number, unit: string, axes = true): string {
  if (!lines.some((l) => l.points.length)) return `<div style="color:#8e8e8e;text-align:center;padding-top:${h / 2 - 10}px;font-size:13px">No data</div>`;
  const max = Math.max(1e-9, ...lines.flatMap((l) => l.points.map((p) => p.v))) * 1.1;
  const left = axes ? 46 : 8;
  const x = (t: number) => left + ((t - t0) / (t1 - t0)) * (w - left - 10);
  const y = (v: number) => 4 + (1 - v / max) * (h - (axes ? 24 : 6));
  let svg = `<svg width="${w}" height="${h}">`;
  for (let i = 0; axes && i <= 4; i++) {
    const v = (max / 4) * i;
    svg += `<line x1="46" x2="${w - 10}" y1="${y(v)}" y2="${y(v)}" stroke="#2c3235"/><text x="42" y="${y(v) + 4}" fill="#8e8e8e" font-size="10" text-anchor="end">${esc(fmt(v, unit).replace(/ .*/, ''))}</text>`;
  }
  for (let m = 0; axes && m <= 4; m++) {
    const t = t0 + ((t1 - t0) / 4) * m;
    svg += `<text x="${x(t)}" y="${h - 4}" fill="#8e8e8e" font-size="10" text-anchor="middle">${new Date(t).toISOString().slice(11, 19)}</text>`;
  }
  lines.forEach((l, i) => {
    if (!l.points.length) return;
    const c = COLORS[i % COLORS.length];
    // A gap in the samples (a process that was down) is a gap in the line, as in Grafana.
    const runs: Array<Array<{ t: number; v: number }>> = [];
    for (const [j, p] of l.points.entries()) {
      if (j === 0 || p.t - l.points[j - 1]!.t > 2500) runs.push([]);
      runs[runs.length - 1]!.push(p);
    }
    for (const run of runs) {
      const d = run.map((p, j) => `${j ? 'L' : 'M'}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join('');
      svg += `<path d="${d}L${x(run[run.length - 1]!.t)},${y(0)}L${x(run[0]!.t)},${y(0)}Z" fill="${c}" opacity="0.12"/><path d="${d}" stroke="${c}" stroke-width="2" fill="none"/>`;
    }
  });
  return svg + '</svg>';
}

/** The dashboard as one HTML page, each panel drawn from `series` over `times`. */
export function renderDashboard(dashboard: { title: string; panels: Panel[] }, series: Series[], times: number[], note: string): string {
  const unitPx = 34;
  const colPx = 1600 / 24;
  const t0 = times[0]!;
  const t1 = times[times.length - 1]!;
  const bottom = Math.max(...dashboard.panels.map((p) => p.gridPos.y + p.gridPos.h));
  let html = `<!doctype html><html><head><meta charset="utf-8"><style>
    body{margin:0;background:#111217;color:#ccccdc;font-family:Inter,Helvetica,Arial,sans-serif}
    .top{height:44px;display:flex;align-items:center;padding:0 16px;font-size:17px;border-bottom:1px solid #22252b}
    .top small{margin-left:auto;color:#8e8e8e;font-size:12px}
    .grid{position:relative;margin:8px;height:${bottom * unitPx}px}
    .p{position:absolute;background:#181b1f;border:1px solid #22252b;border-radius:3px;box-sizing:border-box;overflow:hidden}
    .p h3{margin:0;padding:6px 8px;font-size:13px;font-weight:500}
    .row{position:absolute;font-size:15px;font-weight:500;padding:6px 4px}
    .stat{font-size:34px;font-weight:500;padding:4px 10px;color:#73bf69}
    .lg{font-size:11px;padding:0 8px;display:flex;flex-wrap:wrap;gap:4px 12px}
    .lg i{display:inline-block;width:12px;height:3px;margin-right:4px;vertical-align:middle}
    .bar{margin:4px 8px;font-size:11px}.bar div{height:14px;background:linear-gradient(90deg,#1f60c4,#5794f2);border-radius:2px}
  </style></head><body><div class="top">${esc(dashboard.title)}<small>${esc(note)}</small></div><div class="grid">`;
  for (const p of dashboard.panels) {
    const { x, y, w, h } = p.gridPos;
    const box = `left:${x * colPx}px;top:${y * unitPx}px;width:${w * colPx - 6}px;height:${h * unitPx - 6}px`;
    if (p.type === 'row') {
      html += `<div class="row" style="${box}">${esc(p.title)}</div>`;
      continue;
    }
    const unit = p.fieldConfig?.defaults?.unit ?? 'short';
    const results: Array<{ name: string; points: Array<{ t: number; v: number }> }> = [];
    for (const t of p.targets ?? []) {
      const r: Result = evaluate(t.expr, series, times);
      for (const s of r) results.push({ name: legend(t.legendFormat, s.labels), points: s.points });
    }
    html += `<div class="p" style="${box}"><h3>${esc(p.title)}</h3>`;
    if (p.type === 'stat') {
      const last = results[0]?.points.at(-1)?.v ?? NaN;
      html += `<div class="stat">${esc(fmt(last, unit))}</div>${chart(results, w * colPx - 8, h * unitPx - 100, t0, t1, unit, false)}`;
    } else if (p.type === 'bargauge') {
      const vals = results.map((r) => ({ name: r.name, v: r.points.at(-1)?.v ?? 0 })).sort((a, b) => a.name.localeCompare(b.name));
      const max = Math.max(1, ...vals.map((v) => v.v));
      for (const v of vals) html += `<div class="bar">${esc(v.name)} — ${v.v}<div style="width:${(v.v / max) * 100}%"></div></div>`;
    } else {
      html += chart(results, w * colPx - 8, h * unitPx - 70, t0, t1, unit);
      html += `<div class="lg">${results.map((r, i) => `<span><i style="background:${COLORS[i % COLORS.length]}"></i>${esc(r.name)}</span>`).join('')}</div>`;
    }
    html += '</div>';
  }
  return html + '</div></body></html>';
}
