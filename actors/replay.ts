import { isEventRecord } from '../events/codec.ts';
import type { EventLog, LogRecord } from '../log/port.ts';
import type { FromWorker, ToWorker } from './replay-worker.ts';
import { TOPICS } from '../log/port.ts';
import { keysFor } from '../sealing/keys.ts';
import type { KeyStore } from '../sealing/keys.ts';
import { HISTORY_MESSAGES } from './state.ts';
import { createReplayFold } from './replay-fold.ts';
import { release, takeWorkers } from './replay-pool.ts';
import type { Replayed } from './replay-fold.ts';

export type { Replayed } from './replay-fold.ts';

export type ReplayOptions = {
  log: EventLog;
  /** The conversations' data keys; without them sealed content reads as erased. */
  keys?: KeyStore | null;
  /** The partitions to replay (default: all), read side by side. */
  partitions?: number[];
  /** Messages each state keeps (GEMELLO_HISTORY_MESSAGES). */
  keep?: number;
  /** Called with each batch's record count, its partition and its last offset, for progress. */
  onRecords?: (n: number, partition: number, lastOffset: number) => void;
  /**
   * Worker threads that decode and fold (default 0: this thread does). This thread then only
   * reads the log and hands each conversation's records, in order, to the worker its id picks.
   */
  workers?: number;
  /**
   * With workers: the share of the conversations (0 to 1, by a hash of their ids) this
   * thread decodes and folds itself besides reading (default 0). On two cores one worker
   * and a share here (bench replay: 0.3) cost less CPU per event than two workers: each
   * worker starts its own copy of the decoder (≈ 150 ms of CPU) and every record it gets
   * is copied to it.
   */
  share?: number;
};

/**
 * How a whole-log replay runs where the machine is not known better (`gemello snapshots
 * rebuild`, bench replay): one worker thread and 40 % of the conversations in the reading
 * thread. On two cores that cost less CPU per event than two workers (each starts its own
 * decoder and gets a copy of its records); 0.3 until the platformatic read got cheaper.
 */
export const REPLAY_WORKERS = 1;
export const REPLAY_SHARE = 0.4;

/**
 * Full replay: reads partitions from offset 0 to their end and folds every conversation's
 * events (the log rule of evolve: the first event with a seq wins, a gap throws). Returns
 * each conversation's state; `events` counts the events folded. Messages' sealed text is
 * opened once the fold is done, for the messages the states keep (actors/replay-fold.ts).
 */
export async function replayLog(options: ReplayOptions): Promise<{ states: Map<string, Replayed>; events: number }> {
  if (options.workers) return replayInWorkers(options, options.workers, options.share ?? 0);
  const { log } = options;
  const keep = options.keep ?? HISTORY_MESSAGES;
  const parts = options.partitions ?? Array.from({ length: log.partitions }, (_, p) => p);
  const fold = createReplayFold(keep);
  await Promise.all(parts.map((p) => log.read(TOPICS.events, p, 0, async (records) => {
    const ring = await keysFor(options.keys, records);
    for (const r of records) if (isEventRecord(r)) fold.add(r, ring);
    options.onRecords?.(records.length, p, records[records.length - 1]?.offset ?? -1);
  })));
  return fold.finish();
}

/** FNV-1a of a conversation id: which worker folds it (and, with a share, whether this thread does). */
function hashOf(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

async function replayInWorkers(options: ReplayOptions, n: number, share: number): Promise<{ states: Map<string, Replayed>; events: number }> {
  const { log } = options;
  const keep = options.keep ?? HISTORY_MESSAGES;
  const parts = options.partitions ?? Array.from({ length: log.partitions }, (_, p) => p);
  const workers = takeWorkers(n);
  const off: Array<() => void> = [];
  let answered = false;
  try {
    // A worker's error, or its end without one (it cannot answer then), fails the replay.
    const failures = workers.map((w) => new Promise<never>((_, reject) => {
      const exited = (code: number) => reject(new Error(`replay: a worker thread ended (exit code ${code}) before it answered`));
      w.once('error', reject);
      w.once('exit', exited);
      off.push(() => {
        w.off('error', reject);
        w.off('exit', exited);
      });
    }));
    for (const w of workers) w.postMessage({ kind: 'keep', keep } satisfies ToWorker);
    const here = createReplayFold(keep);
    const perMille = Math.round(share * 1000);
    const reading = Promise.all(parts.map((p) => log.read(TOPICS.events, p, 0, async (records) => {
      const ring = await keysFor(options.keys, records);
      const lanes = workers.map(() => ({ values: [] as string[], offsets: [] as number[], keys: new Map<string, Uint8Array>() }));
      for (const r of records) {
        if (!isEventRecord(r)) continue;
        const h = hashOf(r.key);
        // This thread's share: decoded and folded here, without a copy to a thread.
        if ((h >>> 8) % 1000 < perMille) {
          here.add(r, ring);
          continue;
        }
        const lane = lanes[h % n]!;
        lane.values.push(r.value);
        lane.offsets.push(r.offset);
        const k = ring?.get(r.key);
        if (k) lane.keys.set(r.key, k);
      }
      lanes.forEach((l, i) => {
        if (!l.values.length) return;
        const lengths = Uint32Array.from(l.values, (v) => v.length);
        const offsets = Float64Array.from(l.offsets);
        const message: ToWorker = { kind: 'records', partition: p, offsets, lengths, text: l.values.join(''), keys: [...l.keys] };
        workers[i]!.postMessage(message, [offsets.buffer, lengths.buffer]);
      });
      options.onRecords?.(records.length, p, records[records.length - 1]?.offset ?? -1);
    })));
    await Promise.race([reading, ...failures]);
    const answering = Promise.all(workers.map((w) => new Promise<FromWorker>((resolve) => {
      w.once('message', resolve);
      w.postMessage({ kind: 'done' } satisfies ToWorker);
    })));
    // This thread opens its conversations' kept messages while the workers open theirs (each
    // a third of its work at the end): in turn, the last of it ran on one core.
    let { states, events } = here.finish();
    const answers = await Promise.race([answering, ...failures]);
    answered = true;
    for (const a of answers) {
      if (a.kind === 'failed') throw new Error(`replay: ${a.message}`);
      for (const [id, s] of a.states) states.set(id, s);
      events += a.events;
    }
    return { states, events };
  } finally {
    for (const f of off) f();
    // Workers that answered are kept for the next replay; one left mid-replay (the read failed) is ended.
    if (answered) release(workers);
    else await Promise.all(workers.map((w) => w.terminate()));
  }
}
