import type { ConsumeOptions, LogRecord } from './port.ts';

/** How often a committing consumer commits what its handlers are done with (and once more on stop). */
export const COMMIT_EVERY_MS = 1_000;
/** Records handed over and waiting for their handlers, across partitions, before fetching pauses (it resumes below a fifth of it). */
const MAX_PENDING = 5_000;

/**
 * Per partition: records waiting for the handler, whether it runs, the next offset not yet
 * handed over, and whether its records are held until its floor is known (see hold).
 */
type Lane = { records: LogRecord[]; running: boolean; next: number; held: boolean };

export type LanesOptions = {
  /** The topic's full name, for what is logged. */
  topic: string;
  /** The subscription's handler, whether it commits, the delivery size it asked for. */
  consume: Pick<ConsumeOptions, 'handle' | 'commit' | 'batchBytes' | 'ready'>;
  partitions: number;
  /** Whether handing records to the handler is over (the subscription stops). */
  stopped: () => boolean;
  /** Whether a failing batch is left to the partition's next owner instead of retried. */
  leaving: () => boolean;
  /** Resolves when the subscription begins to stop: a retry waits no longer. */
  leavingNow: Promise<void>;
  /** Pauses (true) or resumes (false) fetching: too many records wait for their handlers. */
  press: (on: boolean) => void;
  warn: (message: string, err: unknown) => void;
};

/**
 * What a consumer of either Kafka client hands over goes into one lane per partition: the
 * handler runs on one batch of a partition at a time (the fetch goes on meanwhile, so
 * heartbeats and rebalances never wait for handlers), a failing batch is delivered again
 * (with what came meanwhile) until it succeeds or the partition moves, and only handled
 * offsets are offered for commit.
 */
export function createLanes(o: LanesOptions) {
  const { handle, batchBytes, ready } = o.consume;
  const commits = o.consume.commit !== false;
  const lanes = new Map<number, Lane>();
  /** The next offset of each partition handled and not yet committed. */
  const toCommit = new Map<number, number>();
  // A larger delivery asked for is more records left waiting, counted at ~512 B each.
  const maxPending = Math.max(MAX_PENDING, Math.ceil((batchBytes ?? 0) / 512) * o.partitions);
  let pending = 0;
  let pressed = false;
  const idle = new Set<() => void>();
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  const press = (on: boolean) => {
    if (pressed === on) return;
    pressed = on;
    o.press(on);
  };

  /** Queues a new record on its lane: 1, the count it adds. */
  const take = (lane: Lane, offset: number, r: LogRecord): number => {
    lane.records.push(r);
    lane.next = offset + 1;
    return 1;
  };
  const added = (n: number) => {
    pending += n;
    if (pending > maxPending) press(true);
  };

  const laneOf = (p: number): Lane => {
    let lane = lanes.get(p);
    if (!lane) lanes.set(p, (lane = { records: [], running: false, next: -1, held: false }));
    return lane;
  };

  async function run(p: number, lane: Lane) {
    let delay = 100;
    while (lane.records.length && !o.stopped() && lanes.get(p) === lane) {
      // A partition being taken over: its first records wait together, and go as one batch.
      const notYet = ready?.(p);
      if (notYet) {
        await notYet.catch(() => {});
        if (o.stopped() || lanes.get(p) !== lane) break;
      }
      const batch = lane.records;
      lane.records = [];
      try {
        await handle(p, batch);
        delay = 100;
        pending -= batch.length;
        if (lanes.get(p) === lane && commits) toCommit.set(p, batch[batch.length - 1]!.offset + 1);
      } catch (err) {
        // While stopping, it is left to the next owner (it was not committed).
        lane.records = batch.concat(lane.records);
        if (o.leaving()) break;
        o.warn(`handler of ${o.topic}/${p} failed, delivering again in ${delay} ms`, err);
        await Promise.race([sleep(delay), o.leavingNow]);
        delay = Math.min(delay * 2, 2_000);
      }
      if (pressed && pending < maxPending / 5) press(false);
    }
    lane.running = false;
    for (const done of idle) done();
  }

  function start(p: number, defer?: (go: () => void) => void): void {
    const lane = lanes.get(p);
    if (!lane || lane.held || lane.running || !lane.records.length) return;
    lane.running = true;
    if (defer) defer(() => void run(p, lane));
    else void run(p, lane);
  }

  return {
    /**
     * Hands one fetched record over (made only if it is new): after a rejoin a fetch starts
     * again from the committed offset, and what was handed over since is not handed twice.
     */
    push(p: number, offset: number, record: () => LogRecord): void {
      const lane = laneOf(p);
      if (offset >= lane.next) added(take(lane, offset, record()));
    },
    /** Hands fetched records of one partition over, in offset order (those already handed over are passed by, as in push). */
    pushAll(p: number, records: readonly LogRecord[]): void {
      const lane = laneOf(p);
      let n = 0;
      for (const r of records) if (r.offset >= lane.next) n += take(lane, r.offset, r);
      added(n);
    },
    /**
     * A partition just assigned here: what is fetched of it waits, unhandled, until release()
     * says where the group's commit stands (see fetch-floors.ts). Its lane starts anew.
     */
    hold(p: number): void {
      const old = lanes.get(p);
      if (old) pending -= old.records.length;
      toCommit.delete(p);
      lanes.set(p, { records: [], running: false, next: -1, held: true });
    },
    /** The group's commit of a held partition (null: none yet): what waits below it is dropped, the rest handed over. */
    release(p: number, floor: number | null): void {
      const lane = lanes.get(p);
      if (!lane?.held) return;
      lane.held = false;
      if (floor !== null) {
        const kept = lane.records.filter((r) => r.offset >= floor);
        pending -= lane.records.length - kept.length;
        lane.records = kept;
        if (lane.next < floor) lane.next = floor;
      }
      start(p);
    },
    /** Starts the partition's handler on what waits, unless it runs or is held; `defer` delays the start (to gather a fetch's records). */
    start,
    /** A new assignment: a partition given to another member is its business now (what waits is dropped, never committed from here). */
    keep(assigned: Set<number>): void {
      for (const [p, lane] of lanes) {
        if (assigned.has(p)) continue;
        pending -= lane.records.length;
        lanes.delete(p);
        toCommit.delete(p);
      }
    },
    /** The offsets to commit now, of the partitions still assigned. */
    takeCommits(assigned: Set<number>): Array<[partition: number, offset: number]> {
      const offsets = [...toCommit].filter(([p]) => assigned.has(p));
      toCommit.clear();
      return offsets;
    },
    /** A commit failed (a rebalance is under way): its offsets wait for the next tick while their partitions are still ours. */
    putBack(offsets: Array<[number, number]>, assigned: Set<number>): void {
      for (const [p, off] of offsets) if (assigned.has(p) && !toCommit.has(p)) toCommit.set(p, off);
    },
    /** The next offset handed over per partition, for a stream opened again after what it was handed. */
    seen(): Array<[partition: number, next: number]> {
      return [...lanes].filter(([, l]) => l.next >= 0).map(([p, l]) => [p, l.next]);
    },
    get pressed(): boolean {
      return pressed;
    },
    /** Waits (at most `ms`) for the handlers in flight to finish, so their offsets are committed. */
    async drain(ms: number): Promise<void> {
      const busy = () => [...lanes.values()].some((l) => l.running);
      const until = Date.now() + ms;
      while (busy() && Date.now() < until) await new Promise<void>((r) => { idle.add(r); setTimeout(r, 50); }).then(() => idle.clear());
    },
  };
}
