// Just enough PromQL for infra/grafana/gemello.json over scraped samples: `sum [by (…)] (X)`,
// `sum [by (…)] (rate(X[w]))` and `histogram_quantile(q, sum by (le, …) (rate(X_bucket[w])))`,
// with `{label="value"}` matchers. Enough to draw the dashboard from a real run without a Prometheus.
export type Sample = { t: number; v: number };
export type Series = { name: string; labels: Record<string, string>; samples: Sample[] };
export type Result = Array<{ labels: Record<string, string>; points: Sample[] }>;

/** Parses Prometheus text into `name{labels} value` lines. */
export function parseExposition(text: string): Array<{ name: string; labels: Record<string, string>; value: number }> {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

const key = (l: Record<string, string>) => JSON.stringify(Object.entries(l).sort());

function select(all: Series[], selector: string): Series[] {
  const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?$/.exec(selector.trim());
  if (!m) throw new Error(`cannot read selector ${selector}`);
  const want = [...(m[2] ?? '').matchAll(/([a-zA-Z_]+)="([^"]*)"/g)].map((x) => [x[1]!, x[2]!] as const);
  return all.filter((s) => s.name === m[1] && want.every(([k, v]) => s.labels[k] === v));
}

/** Per-second rate over `windowS` at each sample time (counter resets count from zero). */
function rate(s: Series, windowS: number): Series {
  const out: Sample[] = [];
  for (const p of s.samples) {
    const from = s.samples.find((q) => q.t >= p.t - windowS * 1000) ?? p;
    if (from.t === p.t) continue;
    const dv = p.v >= from.v ? p.v - from.v : p.v;
    out.push({ t: p.t, v: dv / ((p.t - from.t) / 1000) });
  }
  return { ...s, samples: out };
}

function sumBy(series: Series[], by: string[] | null, times: number[]): Result {
  const groups = new Map<string, { labels: Record<string, string>; members: Series[] }>();
  for (const s of series) {
    const labels = by ? Object.fromEntries(by.filter((b) => b in s.labels).map((b) => [b, s.labels[b]!])) : {};
    const k = key(labels);
    if (!groups.has(k)) groups.set(k, { labels, members: [] });
    groups.get(k)!.members.push(s);
  }
  return [...groups.values()].map(({ labels, members }) => ({
    labels,
    points: times.flatMap((t) => {
      const vs = members.map((m) => m.samples.find((p) => p.t === t)?.v).filter((v): v is number => v !== undefined);
      return vs.length ? [{ t, v: vs.reduce((a, b) => a + b, 0) }] : [];
    }),
  }));
}

function quantile(q: number, buckets: Result): Result {
  const groups = new Map<string, { labels: Record<string, string>; bs: Array<{ le: number; points: Sample[] }> }>();
  for (const b of buckets) {
    const { le, ...rest } = b.labels;
    const k = key(rest);
    if (!groups.has(k)) groups.set(k, { labels: rest, bs: [] });
    groups.get(k)!.bs.push({ le: le === '+Inf' ? Infinity : Number(le), points: b.points });
  }
  return [...groups.values()].map(({ labels, bs }) => {
    bs.sort((a, b) => a.le - b.le);
    const times = bs[0]?.points.map((p) => p.t) ?? [];
    const points = times.flatMap((t) => {
      const counts = bs.map((b) => b.points.find((p) => p.t === t)?.v ?? 0);
      const total = counts[counts.length - 1]!;
      if (!(total > 0)) return [];
      const rank = q * total;
      const i = counts.findIndex((c) => c >= rank);
      const upper = bs[i]!.le === Infinity ? bs[i - 1]?.le ?? 0 : bs[i]!.le;
      const lower = i > 0 ? bs[i - 1]!.le : 0;
      const below = i > 0 ? counts[i - 1]! : 0;
      const inBucket = counts[i]! - below;
      return [{ t, v: bs[i]!.le === Infinity ? upper : lower + (upper - lower) * (inBucket > 0 ? (rank - below) / inBucket : 0) }];
    });
    return { labels, points };
  });
}

/** Evaluates one of the dashboard's expressions over the scraped series. */
export function evaluate(expr: string, all: Series[], times: number[], windowS = 30): Result {
  const e = expr.replace(/\$__rate_interval/g, `${windowS}s`).trim();
  let m = /^histogram_quantile\(\s*([\d.]+)\s*,\s*(.*)\)$/.exec(e);
  if (m) return quantile(Number(m[1]), evaluate(m[2]!, all, times, windowS));
  m = /^sum(?:\s+by\s*\(([^)]*)\))?\s*\((.*)\)$/.exec(e);
  if (m) {
    const by = m[1] ? m[1].split(',').map((s) => s.trim()) : null;
    const inner = m[2]!.trim();
    const r = /^rate\((.*)\[(\d+)s\]\)$/.exec(inner);
    const series = r ? select(all, r[1]!).map((s) => rate(s, Number(r[2]))) : select(all, inner);
    return sumBy(series, by, times);
  }
  throw new Error(`cannot evaluate ${expr}`);
}
