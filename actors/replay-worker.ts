// A replay worker (actors/replay.ts): decodes and folds the events of the conversations
// given to it, in the order they come, and hands the states back when asked.
import { Buffer } from 'node:buffer';
import { parentPort } from 'node:worker_threads';
import type { LogRecord } from '../log/port.ts';
import { createReplayFold } from './replay-fold.ts';
import type { Replayed } from './replay-fold.ts';
import { HISTORY_MESSAGES } from './state.ts';

/**
 * A partition's records for this worker, in offset order: their values joined by newlines
 * (one string is copied to a thread far cheaper than an array of record objects; JSON text as
 * gemello writes it has none) or, when one has a newline, as a list; and their offsets.
 */
export type ToWorker =
  | { kind: 'records'; partition: number; offsets: Float64Array; values: string | string[]; keys: [string, Uint8Array][] }
  | { kind: 'done' };
export type FromWorker = { kind: 'failed'; message: string } | { kind: 'states'; states: [string, Replayed][]; events: number };

/** Data keys met so far, by conversation. */
const known = new Map<string, Uint8Array>();
let fold = createReplayFold(HISTORY_MESSAGES);
let failed: string | null = null;

parentPort!.on('message', (m: ToWorker | { kind: 'keep'; keep: number }) => {
  if (m.kind === 'keep') fold = createReplayFold(m.keep);
  else if (m.kind === 'records') {
    if (failed) return;
    // The same key object from one batch to the next (sealing caches its cipher key per object).
    const ring = new Map<string, Uint8Array>();
    for (const [id, key] of m.keys) {
      const seen = known.get(id);
      if (seen && Buffer.compare(seen, key) === 0) ring.set(id, seen);
      else {
        known.set(id, key);
        ring.set(id, key);
      }
    }
    const values = typeof m.values === 'string' ? m.values.split('\n') : m.values;
    try {
      for (let i = 0; i < values.length; i++) {
        const r: LogRecord = { topic: '', partition: m.partition, offset: m.offsets[i]!, key: '', value: values[i]!, headers: {}, timestamp: 0 };
        fold.add(r, ring);
      }
    } catch (err) {
      failed = (err as Error).message;
    }
  } else {
    if (failed) parentPort!.postMessage({ kind: 'failed', message: failed } satisfies FromWorker);
    else {
      const { states, events } = fold.finish();
      parentPort!.postMessage({ kind: 'states', states: [...states], events } satisfies FromWorker);
    }
    known.clear();
  }
});
