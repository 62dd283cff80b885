// A replay worker (actors/replay.ts): decodes and folds the events of the conversations
// given to it, in the order they come, and hands the states back when asked.
import { parentPort } from 'node:worker_threads';
import { decodeEvent } from '../events/codec.ts';
import type { LogRecord } from '../log/port.ts';
import { evolve, initialState } from './state.ts';
import type { Replayed } from './replay.ts';

export type ToWorker =
  | { kind: 'records'; records: LogRecord[]; keys: [string, Uint8Array][] }
  | { kind: 'done' };
export type FromWorker = { kind: 'failed'; message: string } | { kind: 'states'; states: [string, Replayed][]; events: number };

const states = new Map<string, Replayed>();
let events = 0;
let failed: string | null = null;
let keep = 40;

parentPort!.on('message', (m: ToWorker | { kind: 'keep'; keep: number }) => {
  if (m.kind === 'keep') keep = m.keep;
  else if (m.kind === 'records') {
    if (failed) return;
    const ring = new Map(m.keys);
    try {
      for (const r of m.records) {
        const e = decodeEvent(r, ring);
        const before = states.get(e.conversationId);
        states.set(e.conversationId, { state: evolve(before?.state ?? initialState(e.conversationId), e, keep), position: e.position });
        events++;
      }
    } catch (err) {
      failed = (err as Error).message;
    }
  } else {
    parentPort!.postMessage(failed ? { kind: 'failed', message: failed } : { kind: 'states', states: [...states], events } satisfies FromWorker);
    states.clear();
  }
});
