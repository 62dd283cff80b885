// The main thread's garbage collection during a phase: its pauses (PerformanceObserver 'gc'
// entries; the collector's helper threads are not counted) and the largest heap seen, so a
// change to how much a phase holds in memory (read-ahead, batch sizes) shows in its figures.
import { PerformanceObserver, constants } from 'node:perf_hooks';
import type { PerformanceEntry } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';

export function gcMeter() {
  let minorMs = 0;
  let majorMs = 0;
  let maxHeap = getHeapStatistics().used_heap_size;
  const add = (entries: PerformanceEntry[]) => {
    for (const e of entries) {
      if ((e as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR) minorMs += e.duration;
      else majorMs += e.duration;
    }
  };
  const observer = new PerformanceObserver((list) => add(list.getEntries()));
  observer.observe({ entryTypes: ['gc'] });
  const sampler = setInterval(() => (maxHeap = Math.max(maxHeap, getHeapStatistics().used_heap_size)), 20);
  sampler.unref();
  return {
    /** Pause ms (young generation, the rest) and the largest heap seen (MB) since the meter began; stops it. */
    stop(): { minorMs: number; majorMs: number; maxHeapMb: number } {
      // Entries not yet delivered to the callback.
      add(observer.takeRecords());
      observer.disconnect();
      clearInterval(sampler);
      return { minorMs, majorMs, maxHeapMb: Math.round(Math.max(maxHeap, getHeapStatistics().used_heap_size) / 1e6) };
    },
  };
}
