// A replay worker (actors/replay.ts, kept between replays by actors/replay-pool.ts): decodes
// and folds the events of the conversations given to it, in the order they come, and hands
// the states back when asked.
import { Buffer } from 'node:buffer';
import { parentPort } from 'node:worker_threads';
import { createReplayFold } from './replay-fold.ts';
import type { Replayed } from './replay-fold.ts';
import { HISTORY_MESSAGES } from './state.ts';

/**
 * `keep` starts a replay (a fresh fold). `records`: a partition's records for this worker, in
 * offset order: their values one after another in `text`, each `lengths[i]` UTF-16 units long
 * (one string is copied to a thread far cheaper than a list of them), their offsets, and the
 * data keys of their conversations that the batch has.
 */
export type ToWorker =
  | { kind: 'keep'; keep: number }
  | { kind: 'records'; partition: number; offsets: Float64Array; lengths: Uint32Array; text: string; keys: [string, Uint8Array][] }
  | { kind: 'done' };
export type FromWorker = { kind: 'failed'; message: string } | { kind: 'states'; states: [string, Replayed][]; events: number };

/** Data keys met so far in this replay, by conversation. */
const known = new Map<string, Uint8Array>();
let fold = createReplayFold(HISTORY_MESSAGES);
let failed: string | null = null;

parentPort!.on('message', (m: ToWorker) => {
  if (m.kind === 'keep') {
    fold = createReplayFold(m.keep);
    failed = null;
    known.clear();
  } else if (m.kind === 'records') {
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
    try {
      let at = 0;
      for (let i = 0; i < m.lengths.length; i++) fold.addValue(m.text.slice(at, (at += m.lengths[i]!)), m.partition, m.offsets[i]!, ring);
    } catch (err) {
      failed = (err as Error).message;
    }
  } else {
    if (failed) parentPort!.postMessage({ kind: 'failed', message: failed } satisfies FromWorker);
    else {
      const { states, events } = fold.finish();
      parentPort!.postMessage({ kind: 'states', states: [...states], events } satisfies FromWorker);
    }
    // Nothing of this replay kept while the worker waits for the next.
    fold = createReplayFold(HISTORY_MESSAGES);
    known.clear();
  }
});
