import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';

/** Percentile of a list of numbers (nearest rank), 0 for an empty list. */
export function percentile(values: number[], p: number): number {
  if (!values.length) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export const round = (n: number, digits = 3) => Math.round(n * 10 ** digits) / 10 ** digits;

export function machine(): string {
  const c = cpus();
  return `${c.length} × ${c[0]?.model.trim() ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB`;
}

/** The machine's 1-minute load average now, rounded. */
export const loadNow = () => round(loadavg()[0]!, 2);

/**
 * A run's start: its time and the machine's load, which the machine being shared makes part
 * of every result. `params()` gives the fields every result file has from it.
 */
export function startRun() {
  const t0 = performance.now();
  const loadStart = loadNow();
  return {
    loadStart,
    params: () => ({
      backends: 'Kafka 4.1 (kafkajs), PostgreSQL, Redis on 127.0.0.1',
      duration_s: Math.round((performance.now() - t0) / 1000),
      load_average_start: loadStart,
      load_average_end: loadNow(),
    }),
  };
}

export type BenchResult = {
  name: string;
  params: Record<string, unknown>;
  metrics: Record<string, number>;
  /** Rows of the printed table: [what, value, goal]. */
  table: Array<[string, string, string]>;
};

/** Prints the table and writes bench/results/<name>.json as {name, date, node, machine, params, metrics}. */
export function report(r: BenchResult): string {
  const dir = fileURLToPath(new URL('./results/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  const doc = { name: r.name, date: new Date().toISOString(), node: process.version, machine: machine(), params: r.params, metrics: r.metrics };
  const path = `${dir}${r.name}.json`;
  writeFileSync(path, JSON.stringify(doc, null, 2) + '\n');
  const w0 = Math.max(4, ...r.table.map((row) => row[0].length));
  const w1 = Math.max(5, ...r.table.map((row) => row[1].length));
  const lines = [`| ${'what'.padEnd(w0)} | ${'value'.padEnd(w1)} | goal |`, `| ${'-'.repeat(w0)} | ${'-'.repeat(w1)} | ---- |`];
  for (const [a, b, c] of r.table) lines.push(`| ${a.padEnd(w0)} | ${b.padEnd(w1)} | ${c} |`);
  const text = `\n${r.name} — ${doc.date.slice(0, 10)}, Node ${doc.node}, ${doc.machine}\n${lines.join('\n')}\nwritten ${path}\n`;
  console.log(text);
  return text;
}
