import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';

/**
 * Replay workers kept between replays (actors/replay.ts). A fresh worker costs ≈ 50–60 ms of
 * CPU to start and then decodes its first tens of thousands of events in code not yet
 * optimised: against a replay of 100,000 events that was ≈ 1–2 µs an event. An idle worker
 * is kept `IDLE_MS`, unref'd (it never holds the process open), then ended.
 */
const IDLE_MS = 30_000;
/** Idle workers kept at most (each keeps the heap it grew folding): more are ended as they come back. */
const MAX_IDLE = 2;
const idle: Worker[] = [];
let ending: NodeJS.Timeout | null = null;

/**
 * The workers' environment: this process's, with Node's compile cache on unless it is set
 * (or NODE_DISABLE_COMPILE_CACHE turns it off). A worker compiles its modules (the decoder,
 * zod) anew; from the cache it starts in ≈ 60 ms of CPU instead of ≈ 160 ms.
 */
const workerEnv = (): NodeJS.ProcessEnv =>
  process.env.NODE_COMPILE_CACHE ? process.env : { ...process.env, NODE_COMPILE_CACHE: join(tmpdir(), 'node-compile-cache') };

/** `n` workers for one replay: idle ones first, new ones for the rest. Give them back with `release` or end them. */
export function takeWorkers(n: number): Worker[] {
  const kept = idle.splice(0, n);
  for (const w of kept) w.ref();
  const made: Worker[] = [];
  try {
    while (kept.length + made.length < n) {
      const w = new Worker(new URL('./replay-worker.ts', import.meta.url), { env: workerEnv() });
      // A worker that fails or ends is never handed out again (a replay hears its error itself).
      const drop = () => {
        const i = idle.indexOf(w);
        if (i >= 0) idle.splice(i, 1);
      };
      w.on('error', drop);
      w.on('exit', drop);
      made.push(w);
    }
  } catch (err) {
    // A worker that could not start (out of threads, memory, files): none taken is left running or held.
    release(kept);
    for (const w of made) void w.terminate();
    throw err;
  }
  return [...kept, ...made];
}

/** Workers whose replay answered (their fold is reset by the next replay's first message): kept idle for the next. */
export function release(workers: Worker[]): void {
  for (const w of workers) {
    if (idle.length >= MAX_IDLE) {
      void w.terminate();
      continue;
    }
    w.unref();
    idle.push(w);
  }
  if (ending) clearTimeout(ending);
  ending = setTimeout(() => void endIdle(), IDLE_MS);
  ending.unref();
}

/** Ends the idle workers now (tests, a process about to exit). */
export async function endIdle(): Promise<void> {
  if (ending) clearTimeout(ending);
  ending = null;
  await Promise.all(idle.splice(0).map((w) => w.terminate()));
}
