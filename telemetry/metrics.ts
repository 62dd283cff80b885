/** Counters, gauges and histograms with labels, rendered as Prometheus text. */
export type Labels = Record<string, string>;

type Series = { labels: Labels; value: number };
type HistSeries = { labels: Labels; buckets: number[]; sum: number; count: number };

/** A series' identity: its labels in name order (called on every record, so no JSON and no locale-aware sort). */
const key = (labels: Labels) => {
  const names = Object.keys(labels);
  if (names.length > 1) names.sort();
  let k = '';
  for (const n of names) k += `${n}\u0000${labels[n]}\u0001`;
  return k;
};
const fmt = (labels: Labels) => {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
};

export type Metrics = ReturnType<typeof createMetrics>;

/** A registry; one per process, created in main and handed to whoever records. */
export function createMetrics() {
  const help = new Map<string, { type: 'counter' | 'gauge' | 'histogram'; text: string; bounds?: number[] }>();
  const values = new Map<string, Map<string, Series>>();
  const hists = new Map<string, Map<string, HistSeries>>();
  const collectors: Array<() => void> = [];

  const series = (name: string, labels: Labels) => {
    let m = values.get(name);
    if (!m) values.set(name, (m = new Map()));
    const k = key(labels);
    let s = m.get(k);
    if (!s) m.set(k, (s = { labels, value: 0 }));
    return s;
  };

  return {
    counter(name: string, text: string) {
      help.set(name, { type: 'counter', text });
      return { inc: (labels: Labels = {}, by = 1) => void (series(name, labels).value += by) };
    },
    gauge(name: string, text: string) {
      help.set(name, { type: 'gauge', text });
      return {
        set: (value: number, labels: Labels = {}) => void (series(name, labels).value = value),
        inc: (labels: Labels = {}, by = 1) => void (series(name, labels).value += by),
      };
    },
    histogram(name: string, text: string, bounds: number[]) {
      help.set(name, { type: 'histogram', text, bounds });
      return {
        observe(value: number, labels: Labels = {}) {
          let m = hists.get(name);
          if (!m) hists.set(name, (m = new Map()));
          const k = key(labels);
          let h = m.get(k);
          if (!h) m.set(k, (h = { labels, buckets: bounds.map(() => 0), sum: 0, count: 0 }));
          for (let i = 0; i < bounds.length; i++) if (value <= bounds[i]!) h.buckets[i]!++;
          h.sum += value;
          h.count++;
        },
      };
    },
    /** Runs `fn` before each render, to sample gauges. */
    onCollect(fn: () => void) {
      collectors.push(fn);
    },
    /** A counter's or gauge's current value (tests and the CLI read it). */
    value(name: string, labels: Labels = {}): number {
      return values.get(name)?.get(key(labels))?.value ?? 0;
    },
    render(): string {
      for (const c of collectors) c();
      const out: string[] = [];
      for (const [name, h] of help) {
        out.push(`# HELP ${name} ${h.text}`, `# TYPE ${name} ${h.type}`);
        if (h.type === 'histogram') {
          for (const s of hists.get(name)?.values() ?? []) {
            h.bounds!.forEach((b, i) => out.push(`${name}_bucket${fmt({ ...s.labels, le: String(b) })} ${s.buckets[i]}`));
            out.push(`${name}_bucket${fmt({ ...s.labels, le: '+Inf' })} ${s.count}`);
            out.push(`${name}_sum${fmt(s.labels)} ${s.sum}`, `${name}_count${fmt(s.labels)} ${s.count}`);
          }
        } else {
          for (const s of values.get(name)?.values() ?? []) out.push(`${name}${fmt(s.labels)} ${s.value}`);
        }
      }
      return out.join('\n') + '\n';
    },
  };
}

export const LATENCY_BUCKETS_MS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000];
