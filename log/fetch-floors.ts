import type { FetchTopic } from './platformatic-fetch.ts';

/**
 * A partition newly assigned to a group member is fetched from no lower than the group's
 * committed offset for it, whatever the client library's stream still holds.
 *
 * Why: @platformatic/kafka 2.12's MessagesStream keeps a fetch offset for every partition of
 * the topic (those of partitions it owned before, and the earliest offset for the others,
 * seeded at its first join) and refreshes them from the group's commits after a rebalance.
 * A fetch being built while the assignment changes (its metadata call under way) takes the
 * new partitions with the offsets it held, and a refresh that fails is dropped silently: the
 * new owner of a partition then read its commands again from where it had last owned it, or
 * from the first one ever written, and answered old prompts a second time (a chaos run:
 * 154 prompts, after a host was frozen for 5 s). The floor is looked up here, on assignment,
 * and every fetch of that partition waits for it and starts at it.
 */
export type FetchFloors = {
  /** A new assignment (`all`), of which `added` are the partitions not owned before. */
  assigned(all: ReadonlySet<number>, added: readonly number[]): void;
  /**
   * Raises a fetch's offsets to the floors of its partitions (waiting for those still looked
   * up); returns where the stream itself stood in each partition it raised (null: none raised).
   */
  raise(topics: FetchTopic[]): Promise<ReadonlyMap<number, number> | null>;
};

export type FetchFloorsOptions = {
  /** The group's committed offsets of these partitions (by partition; undefined or negative: none). */
  committed(partitions: number[]): Promise<ReadonlyArray<bigint | undefined>>;
  /** A partition's floor is known (null: the group has no commit for it): nothing of it below it is handed over. */
  onFloor(partition: number, offset: number | null): void;
  /** Whether the subscription is over (a lookup stops). */
  closed(): boolean;
  warn(message: string, err: unknown): void;
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/**
 * How long a floor is applied at most: past it the stream's own offsets rule, so a commit
 * beyond the partition's end (a topic recreated under the group) cannot keep every fetch
 * failing with OFFSET_OUT_OF_RANGE and raised back to it again.
 */
const FLOOR_KEEP_MS = 30_000;

export function createFetchFloors(o: FetchFloorsOptions): FetchFloors {
  /** Known floors (and when each was learned), until a fetch of the partition is asked from it or past it by the stream itself. */
  const floors = new Map<number, { offset: number; at: number }>();
  /** Lookups under way, by partition: the latest one of each (an older one no longer speaks for it). */
  const pending = new Map<number, { wait: Promise<void> }>();
  let owned: ReadonlySet<number> = new Set();

  async function lookUp(partitions: number[], mine: { wait: Promise<void> }): Promise<void> {
    // Until it is known, or the partitions are no longer ours: a fetch that went on without
    // it could hand over commands handled long ago.
    for (let delay = 50, warned = false; ; delay = Math.min(delay * 2, 1_000)) {
      const still = partitions.filter((p) => owned.has(p));
      if (o.closed() || !still.length) return;
      try {
        const committed = await o.committed(still);
        for (const p of still) {
          if (!owned.has(p) || pending.get(p) !== mine) continue; // revoked, or looked up again since
          const c = committed[p];
          const floor = c === undefined || c < 0n ? null : Number(c);
          if (floor !== null) floors.set(p, { offset: floor, at: Date.now() });
          o.onFloor(p, floor);
        }
        return;
      } catch (err) {
        if (!warned) o.warn(`reading the committed offsets of partitions ${still.join(', ')} (their fetches wait for them)`, err);
        warned = true;
        await sleep(delay);
      }
    }
  }

  return {
    assigned(all, added) {
      owned = all;
      for (const p of [...floors.keys()]) if (!all.has(p)) floors.delete(p);
      for (const p of [...pending.keys()]) if (!all.has(p)) pending.delete(p);
      if (!added.length) return;
      for (const p of added) floors.delete(p);
      const lookup = { wait: Promise.resolve() };
      lookup.wait = lookUp([...added], lookup).finally(() => {
        for (const p of added) if (pending.get(p) === lookup) pending.delete(p);
      });
      for (const p of added) pending.set(p, lookup);
    },
    async raise(topics) {
      const waits = new Set<Promise<void>>();
      for (const t of topics) for (const x of t.partitions) {
        const w = pending.get(x.partition);
        if (w) waits.add(w.wait);
      }
      if (waits.size) await Promise.all(waits);
      if (!floors.size) return null;
      const now = Date.now();
      let raised: Map<number, number> | null = null;
      for (const t of topics) for (const x of t.partitions) {
        const floor = floors.get(x.partition);
        if (floor === undefined) continue;
        // The stream caught up with it (its offsets only move on), or it has been applied long enough.
        if (x.fetchOffset >= BigInt(floor.offset) || now - floor.at > FLOOR_KEEP_MS) floors.delete(x.partition);
        else {
          (raised ??= new Map()).set(x.partition, Number(x.fetchOffset));
          x.fetchOffset = BigInt(floor.offset);
        }
      }
      return raised;
    },
  };
}
