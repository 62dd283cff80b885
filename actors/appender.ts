import { LogBusy } from '../log/port.ts';
import type { EventLog, OutgoingRecord } from '../log/port.ts';

/** The log answered a write with an offset before the writer's position: nothing of it was written. */
class NotWritten extends Error {}

type Pending = { records: OutgoingRecord[]; resolve: (offsets: number) => void; reject: (err: unknown) => void };

/**
 * Appends to one partition of the events topic, batching what arrives while a write is
 * in flight into the next write.
 *
 * Single-writer fence: this host is the only writer of the partition while it owns it,
 * so each write must land exactly at `next`, the offset after our last write. A write
 * that lands further on means someone else (a zombie that lost the partition) wrote in
 * between; `onForeign` is told the range so the host can re-read it and reconcile.
 *
 * A write answered with an offset before `next` wrote nothing (the broker took it for a
 * duplicate): it fails like a write in doubt, so what the log holds is read before going on.
 *
 * A write that failed on our side may still have landed (the broker wrote it, then went away
 * before it answered): the writer is then in doubt, and nothing more is written before
 * `onDoubt` has read what lies after `next` (to the end of the partition), and folded it into
 * the conversations it touches. `settled()` lets a writer wait for that before it decides
 * what to write.
 */
export function createAppender(opts: {
  log: EventLog;
  topic: string;
  partition: number;
  next: number;
  onForeign: (from: number, to: number) => Promise<void>;
  /** Reads what landed from `from` on and rebuilds what it touches; resolves with the end it read to. */
  onDoubt: (from: number) => Promise<number>;
  /**
   * Asked right before each write is sent (what was queued behind a write in flight goes out
   * when that one is answered, maybe long after its caller's checks): it may wait, and a throw
   * refuses the write, unsent (its appends reject with that error; nothing is in doubt).
   */
  guard?: () => void | Promise<void>;
}) {
  let next = opts.next;
  let queue: Pending[] = [];
  let writing = false;
  let inDoubt = false;
  let settling: Promise<void> | null = null;

  /** Learns what landed after `next` while in doubt (one attempt at a time; a failed one leaves the doubt for the next call). */
  function settle(): Promise<void> {
    if (!inDoubt) return Promise.resolve();
    settling ??= (async () => {
      try {
        const end = await opts.onDoubt(next);
        if (end > next) next = end;
        inDoubt = false;
      } finally {
        settling = null;
      }
    })();
    return settling;
  }

  async function drain() {
    writing = true;
    while (queue.length) {
      const batch = queue;
      queue = [];
      const records = batch.flatMap((p) => p.records);
      let sent = false;
      try {
        await settle();
        const guarded = opts.guard?.();
        if (guarded) await guarded;
        sent = true;
        const base = await opts.log.append(opts.topic, opts.partition, records);
        // An offset before ours is no new write: the broker took the batch for one it already
        // has (a client that reused an idempotence sequence after a failed send) and wrote nothing.
        if (base < next) throw new NotWritten(`the log answered offset ${base} for a write at ${next} of ${opts.topic}/${opts.partition}: taken for a duplicate, not written`);
        if (base !== next) await opts.onForeign(next, base);
        next = base + records.length;
        let at = base;
        for (const p of batch) {
          p.resolve(at);
          at += p.records.length;
        }
      } catch (err) {
        // Unless nothing was sent (the doubt could not be settled, the guard refused, the log's queue was full), the
        // write may have landed: in doubt before any writer hears of the failure, and settled
        // at once if the log answers.
        if (sent && !inDoubt && !(err instanceof LogBusy)) {
          inDoubt = true;
          void settle().catch(() => {});
        }
        for (const p of batch) p.reject(err);
      }
    }
    writing = false;
  }

  return {
    /** Appends records in order; resolves with the offset of the first. */
    append(records: OutgoingRecord[]): Promise<number> {
      return new Promise<number>((resolve, reject) => {
        queue.push({ records, resolve, reject });
        if (!writing) void drain();
      });
    },
    /** Resolves once this writer knows what its partition holds (at once unless a write failed); rejects when the log cannot say yet. */
    settled: settle,
    /** Whether a write failed and what landed of it is not known yet. */
    get inDoubt() {
      return inDoubt;
    },
    get next() {
      return next;
    },
    /** Records waiting for the write in flight (bounded by the resident actors: each appends from its mailbox, one task at a time). */
    get waiting() {
      let n = 0;
      for (const p of queue) n += p.records.length;
      return n;
    },
  };
}
