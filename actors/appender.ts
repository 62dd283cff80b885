import type { EventLog, OutgoingRecord } from '../log/port.ts';

/** A batch refused because the partition holds writes its callers did not see (they decide again). */
export class LogMovedOn extends Error {}

type Pending = { records: OutgoingRecord[]; resolve: (offsets: number) => void; reject: (err: unknown) => void };

/**
 * Appends to one partition of the events topic, batching what arrives while a write is
 * in flight into the next write.
 *
 * Single-writer fence: this host is the only writer of the partition while it owns it,
 * so each write must land exactly at `next`, the offset after our last write. A write
 * that lands further on means someone else (a zombie that lost the partition) wrote in
 * between; `onForeign` is told the range so the host can re-read it and reconcile.
 */
export function createAppender(opts: {
  log: EventLog;
  topic: string;
  partition: number;
  next: number;
  onForeign: (from: number, to: number) => Promise<void>;
}) {
  let next = opts.next;
  let queue: Pending[] = [];
  let writing = false;
  /** Set when a write failed: it may have landed all the same (the broker wrote it, then the answer was lost). */
  let unsure = false;

  async function drain() {
    writing = true;
    while (queue.length) {
      const batch = queue;
      queue = [];
      const records = batch.flatMap((p) => p.records);
      try {
        if (unsure) {
          // Written again as it stands, a write that landed would be in the log twice (its seq
          // too): first find out, and if it landed, bring the actors it touched up to date
          // and refuse this batch, which was decided without it (its callers decide again).
          const end = (await opts.log.endOffsets(opts.topic))[opts.partition]!;
          unsure = false;
          if (end > next) {
            await opts.onForeign(next, end);
            next = end;
            throw new LogMovedOn(`partition ${opts.partition}: a write that seemed to fail had landed (offsets up to ${end - 1}); decide again`);
          }
        }
        const base = await opts.log.append(opts.topic, opts.partition, records);
        if (base !== next) await opts.onForeign(next, base);
        next = base + records.length;
        let at = base;
        for (const p of batch) {
          p.resolve(at);
          at += p.records.length;
        }
      } catch (err) {
        if (!(err instanceof LogMovedOn)) unsure = true;
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
