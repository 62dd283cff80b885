import { describe, expect, it } from 'vitest';
import { createFetchFloors } from '../../log/fetch-floors.ts';
import type { FetchTopic } from '../../log/platformatic-fetch.ts';
import { createLanes } from '../../log/lanes.ts';
import type { LogRecord } from '../../log/port.ts';

const fetchOf = (offsets: Record<number, bigint>): FetchTopic[] => [{
  topicId: 't',
  partitions: Object.entries(offsets).map(([p, fetchOffset]) => ({ partition: Number(p), fetchOffset, currentLeaderEpoch: -1, lastFetchedEpoch: -1, partitionMaxBytes: 1 })),
}];
const offsetsOf = (topics: FetchTopic[]) => Object.fromEntries(topics[0]!.partitions.map((x) => [x.partition, x.fetchOffset]));

describe('fetch floors: a newly assigned partition is fetched from the group\'s commit, not from what the library\'s stream held', () => {
  it('holds the first fetch of a new partition until its commit is known, then starts it there; others are left as they are', async () => {
    let answer!: (c: bigint[]) => void;
    const floorsSeen: Array<[number, number | null]> = [];
    const floors = createFetchFloors({
      committed: () => new Promise((r) => (answer = r)),
      onFloor: (p, o) => floorsSeen.push([p, o]),
      closed: () => false,
      warn: () => {},
    });
    floors.assigned(new Set([0, 5]), [5]);
    // The stale offsets a rejoin left: partition 5 at the earliest offset, 0 where this member is.
    const fetch = fetchOf({ 0: 7n, 5: 0n });
    let sent = false;
    const raised = floors.raise(fetch).then(() => (sent = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(sent).toBe(false);
    const committed: bigint[] = [];
    committed[5] = 1_092n;
    answer(committed);
    await raised;
    expect(offsetsOf(fetch)).toEqual({ 0: 7n, 5: 1_092n });
    expect(floorsSeen).toEqual([[5, 1_092]]);
    // Until the stream itself asks from there (a raised fetch that brought nothing leaves it where it was), it is raised again;
    const again = fetchOf({ 5: 3n });
    await floors.raise(again);
    expect(offsetsOf(again)).toEqual({ 5: 1_092n });
    // then its own offsets rule again (an out-of-range reset later is not fought).
    await floors.raise(fetchOf({ 5: 1_100n }));
    const later = fetchOf({ 5: 0n });
    await floors.raise(later);
    expect(offsetsOf(later)).toEqual({ 5: 0n });
  });

  it('asks again while the group does not answer, and gives up on partitions no longer assigned', async () => {
    let calls = 0;
    const warned: string[] = [];
    const floors = createFetchFloors({
      committed: async () => {
        calls++;
        if (calls < 3) throw new Error('NOT_COORDINATOR');
        const c: bigint[] = [];
        c[2] = 40n;
        return c;
      },
      onFloor: () => {},
      closed: () => false,
      warn: (m) => warned.push(m),
    });
    floors.assigned(new Set([2]), [2]);
    const fetch = fetchOf({ 2: 0n });
    await floors.raise(fetch);
    expect(offsetsOf(fetch)).toEqual({ 2: 40n });
    expect(calls).toBe(3);
    expect(warned).toHaveLength(1);

    // A partition taken away while its lookup waits: nothing waits for it any more.
    const stuck = createFetchFloors({ committed: () => new Promise(() => {}), onFloor: () => {}, closed: () => false, warn: () => {} });
    stuck.assigned(new Set([1]), [1]);
    stuck.assigned(new Set([3]), []);
    const other = fetchOf({ 3: 9n });
    await stuck.raise(other);
    expect(offsetsOf(other)).toEqual({ 3: 9n });
  });

  it('a partition with no commit yet keeps the library\'s start (the group\'s fallback), and is released all the same', async () => {
    const released: Array<[number, number | null]> = [];
    const floors = createFetchFloors({ committed: async () => [-1n], onFloor: (p, o) => released.push([p, o]), closed: () => false, warn: () => {} });
    floors.assigned(new Set([0]), [0]);
    const fetch = fetchOf({ 0: 0n });
    await floors.raise(fetch);
    expect(offsetsOf(fetch)).toEqual({ 0: 0n });
    expect(released).toEqual([[0, null]]);
  });
});

describe('a held lane (a partition just assigned, its floor not known yet)', () => {
  it('hands nothing over until released, then only what lies at or past the group\'s commit', async () => {
    const batches: number[][] = [];
    const lanes = createLanes({
      topic: 't',
      partitions: 2,
      consume: { handle: async (_p, records) => void batches.push(records.map((r) => r.offset)) },
      stopped: () => false,
      leaving: () => false,
      leavingNow: new Promise(() => {}),
      press: () => {},
      warn: () => {},
    });
    const at = (offset: number): LogRecord => ({ topic: 't', partition: 1, offset, key: 'k', value: '{}', headers: {}, timestamp: 0 });
    lanes.hold(1);
    // A stale fetch: the stream still held the partition's earliest offset.
    lanes.pushAll(1, [0, 1, 2, 3, 4].map(at));
    lanes.start(1);
    await new Promise((r) => setTimeout(r, 10));
    expect(batches).toEqual([]);
    lanes.release(1, 3);
    await new Promise((r) => setTimeout(r, 10));
    expect(batches).toEqual([[3, 4]]);
    // The fetch from the floor brings 3 and 4 again: not handed over twice.
    lanes.pushAll(1, [3, 4, 5].map(at));
    lanes.start(1);
    await new Promise((r) => setTimeout(r, 10));
    expect(batches).toEqual([[3, 4], [5]]);
  });
});
