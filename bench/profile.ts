// BENCH_PROFILE=<dir>: a CPU profile of just the measured phase of a benchmark (not its set-up),
// written as <dir>/<name>.cpuprofile (open it in Chrome DevTools, or summarize it by function).
// BENCH_HEAP_PROFILE=<dir>: a sampling heap profile of the same phase, <dir>/<name>.heapprofile
// (what was allocated where, live or since collected: what makes the collector's work).
import { mkdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';

export async function profiled<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const dir = process.env.BENCH_PROFILE;
  const heapDir = process.env.BENCH_HEAP_PROFILE;
  if (!dir && !heapDir) return fn();
  const session = new Session();
  session.connect();
  if (dir) {
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 200 });
    await session.post('Profiler.start');
  }
  if (heapDir) {
    await session.post('HeapProfiler.enable');
    // Objects collected before the profile ends are kept in it: the young generation's garbage is what counts here.
    await session.post('HeapProfiler.startSampling', { samplingInterval: 16 * 1024, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  }
  try {
    return await fn();
  } finally {
    if (dir) {
      const { profile } = await session.post('Profiler.stop');
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, `${name}.cpuprofile`), JSON.stringify(profile));
    }
    if (heapDir) {
      const { profile } = await session.post('HeapProfiler.stopSampling');
      mkdirSync(heapDir, { recursive: true });
      writeFileSync(join(heapDir, `${name}.heapprofile`), JSON.stringify(profile));
    }
    session.disconnect();
  }
}
