import type { Metrics } from './metrics.ts';

/** What Node's `process.memoryUsage()` and Deno's `Deno.memoryUsage()` both return. */
export type MemoryUsage = { rss: number; heapUsed: number; heapTotal: number; external: number };

/** The process's memory in /metrics, sampled when they are read (the soak plots them), on Node and on Deno. */
export function reportMemory(metrics: Metrics, usage: () => MemoryUsage): void {
  const rss = metrics.gauge('gemello_process_rss_bytes', 'Resident set size of this process');
  const heap = metrics.gauge('gemello_process_heap_used_bytes', 'V8 heap in use');
  const heapTotal = metrics.gauge('gemello_process_heap_total_bytes', 'V8 heap reserved');
  const external = metrics.gauge('gemello_process_external_bytes', 'Memory of buffers and other objects outside the V8 heap');
  metrics.onCollect(() => {
    const m = usage();
    rss.set(m.rss);
    heap.set(m.heapUsed);
    heapTotal.set(m.heapTotal);
    external.set(m.external);
  });
}
