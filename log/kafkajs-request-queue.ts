// kafkajs 2.2.4 (its last release) re-arms a timer after every response on every connection,
// whether or not a request waits: `throttledUntil` starts at -1, so the delay it computes is
// `-1 - Date.now()`, which Node turns into 1 ms (and a TimeoutNegativeWarning, once per process).
// The check then re-arms itself, so each connection wakes every millisecond for as long as it
// is open: an idle producer and admin measured 266 ms of CPU in 5 s (46 ms without it) on
// 2026-12-02. Reported upstream as tulios/kafkajs#1751 and #1704; fixes there were never released.
//
// This keeps the library's behaviour where it matters (requests waiting, or the broker throttling
// this client) and skips the timer only when there is nothing to check and no throttle to wait
// out: a request that cannot go at once is queued and schedules its own check, and every
// response and timeout checks the queue again.
import { Kafka } from 'kafkajs';
import type { KafkaConfig } from 'kafkajs';
import { kafkajsInternals } from './kafkajs-internal.ts';
import { writeKafkajsProducesContiguously } from './kafkajs-produce.ts';

type Queue = { pending: unknown[]; throttledUntil: number; scheduleCheckPendingRequests(): void };

const PATCHED = Symbol.for('gemello.kafkajs.requestQueue.idle');

/** A kafkajs client whose idle connections do not wake every millisecond and whose Produce requests are written in one buffer (log/kafkajs-produce.ts). */
export function newKafka(config: KafkaConfig): Kafka {
  stopIdleRequestQueueTimers();
  writeKafkajsProducesContiguously();
  return new Kafka(config);
}

function stopIdleRequestQueueTimers(): void {
  // The class is internal: loaded from kafkajs' own file, the module instance its connections use.
  const require = kafkajsInternals();
  if (!require) return;
  const RequestQueue = require('kafkajs/src/network/requestQueue/index.js') as { prototype?: Queue & { [PATCHED]?: true } };
  const proto = RequestQueue.prototype;
  if (!proto || typeof proto.scheduleCheckPendingRequests !== 'function' || proto[PATCHED]) return;
  const schedule = proto.scheduleCheckPendingRequests;
  proto.scheduleCheckPendingRequests = function (this: Queue) {
    if (this.pending.length === 0 && !(this.throttledUntil > Date.now())) return;
    schedule.call(this);
  };
  proto[PATCHED] = true;
}
