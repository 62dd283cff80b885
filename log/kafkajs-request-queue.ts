// kafkajs 2.2.4 (its last release) re-arms a timer after every response on every connection,
// whether or not a request waits: `throttledUntil` starts at -1, so the delay it computes is
// `-1 - Date.now()`, which Node turns into 1 ms (and a TimeoutNegativeWarning, once per process).
// The check then re-arms itself, so each connection wakes every millisecond for as long as it
// is open: an idle producer and admin measured 217 ms of CPU in 5 s (4 % of a core) on
// 2026-12-02. Reported upstream as tulios/kafkajs#1751 and #1704; fixes there were never released.
//
// This keeps the library's behaviour where it matters (requests waiting, or the broker throttling
// this client) and skips the timer only when there is nothing to check and no throttle to wait
// out: a request that cannot go at once is queued and schedules its own check, and every
// response and timeout checks the queue again.
import { createRequire } from 'node:module';

// The class is internal (no types, not re-exported): loaded from kafkajs' own file, the same
// module instance its connections use.
const RequestQueue: unknown = createRequire(import.meta.url)('kafkajs/src/network/requestQueue/index.js');

type Queue = { pending: unknown[]; throttledUntil: number; scheduleCheckPendingRequests(): void };

const PATCHED = Symbol.for('gemello.kafkajs.requestQueue.idle');

export function stopIdleRequestQueueTimers(): void {
  const proto = (RequestQueue as { prototype: Queue & { [PATCHED]?: true } }).prototype;
  if (!proto || typeof proto.scheduleCheckPendingRequests !== 'function' || proto[PATCHED]) return;
  const schedule = proto.scheduleCheckPendingRequests;
  proto.scheduleCheckPendingRequests = function (this: Queue) {
    if (this.pending.length === 0 && !(this.throttledUntil > Date.now())) return;
    schedule.call(this);
  };
  proto[PATCHED] = true;
}
