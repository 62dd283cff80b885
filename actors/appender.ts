import type { EventLog, OutgoingRecord } from '../log/port.ts';

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

  async function drain() {
    writing = true;
    while (queue.length) {
      const batch = queue;
      queue = [];
      const records = batch.flatMap((p) => p.records);
      try {
        const base = await opts.log.append(opts.topic, opts.partition, records);
        if (base !== next) await opts.onForeign(next, base);
        next = base + records.length;
        let at = base;
        for (const p of batch) {
          p.resolve(at);
          at += p.records.length;
        }
      } catch (err) {
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
