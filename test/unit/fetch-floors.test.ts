import { describe, expect, it } from 'vitest';
import { createFetchFloors } from '../../log/fetch-floors.ts';
import type { FetchTopic } from '../../log/platformatic-fetch.ts';

const fetchOf = (offsets: Record<number, bigint>): FetchTopic[] => [{
  topicId: 't',
  partitions: Object.entries(offsets).map(([p, fetchOffset]) => ({ partition: Number(p), fetchOffset, currentLeaderEpoch: -1, lastFetchedEpoch: -1, partitionMaxBytes: 1 })),
}];
const offsetsOf = (topics: FetchTopic[]) => Object.fromEntries(topics[0]!.partitions.map((x) => [x.partition, x.fetchOffset]));

describe('fetch floors: a newly assigned partition is fetched from the group\'s commit, not from what the library\'s stream held', () => {
  it('holds the first fetch of a new partition until its commit is known, then starts it there; others are left as they are', async () => {
    let answer!: (c: bigint[]) => void;
    const floorsSeen: Array<[number, number]> = [];
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
    // Once fetched from there, the stream's own offsets rule again (an out-of-range reset is not fought).
    const next = fetchOf({ 5: 3n });
    await floors.raise(next);
    expect(offsetsOf(next)).toEqual({ 5: 3n });
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

  it('a partition with no commit yet keeps the library\'s start (the group\'s fallback)', async () => {
    const floors = createFetchFloors({ committed: async () => [-1n], onFloor: () => {}, closed: () => false, warn: () => {} });
    floors.assigned(new Set([0]), [0]);
    const fetch = fetchOf({ 0: 0n });
    await floors.raise(fetch);
    expect(offsetsOf(fetch)).toEqual({ 0: 0n });
  });
});
