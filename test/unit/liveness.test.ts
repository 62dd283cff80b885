// The lease's zombie fence, driven alone: a host whose event loop stalled longer than its
// lease holds its appends and asks the group; whatever the answer, it ends up serving its
// partitions again (the soak once saw a lone host that never did).
import { afterEach, describe, expect, it } from 'vitest';
import type { Liveness } from '../../actors/ports.ts';
import { createTwinCatalog } from '../../actors/twins.ts';
import { createHostContext } from '../../actors/host.ts';
import type { HostContext } from '../../actors/host/context.ts';
import { startLiveness } from '../../actors/host/liveness.ts';
import { acquire, onAssigned } from '../../actors/host/partitions.ts';
import type { Subscription } from '../../log/port.ts';
import { createMemorySnapshotStore } from '../../stores/snapshots/memory.ts';
import { createMetrics } from '../../telemetry/metrics.ts';
import { quietLogger, sleep, tempFileLogs } from '../support/temp-log.ts';

const quiet = quietLogger;
const TTL = 100;
const fileLog = tempFileLogs('lease');
const stops: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const stop of stops.splice(0)) await stop();
});
/** Blocks the event loop, as a loaded machine or a long pause would. */
const stall = (ms: number) => {
  for (const end = performance.now() + ms; performance.now() < end; );
};

/** A host owning partition 0 with its lease running; the group answers `answers` in turn (the last one from then on). */
function world(answers: Array<boolean | null>, renewals: { hang: boolean; lastAt?: number } = { hang: false }, ttlMs = TTL) {
  const log = fileLog(1);
  const evicted: string[][] = [];
  /** When each eviction was asked for (performance.now()). */
  const evictedAt: number[] = [];
  log.evict = async (_group, members) => {
    evicted.push(members);
    evictedAt.push(performance.now());
  };
  const ctx: HostContext = createHostContext({ log, snapshots: createMemorySnapshotStore(), readModel: null, catalog: createTwinCatalog(), replyModel: { name: 'stub', reply: async () => ({ text: 'x', model: 'stub', tokens: { prompt: 1, completion: 1, total: 2 } }) }, metrics: createMetrics(), logger: quiet });
  const leases = new Map<string, number>();
  const store: Liveness = {
    // Hanging: the renewal never reaches the store (a starved Redis or process); the next wait behind it.
    renew: (m, ttl) => {
      if (renewals.hang) return new Promise<void>(() => {});
      renewals.lastAt = performance.now();
      leases.set(m, Date.now() + ttl);
      return Promise.resolve();
    },
    expired: async () => [...leases].filter(([, t]) => t < Date.now()).map(([m]) => m),
    forget: async (ms) => void ms.forEach((m) => leases.delete(m)),
    close: async () => {},
  };
  let asked = 0;
  const subscription: Subscription = {
    stop: async () => {},
    memberId: () => 'me',
    stillMember: async () => answers[Math.min(asked++, answers.length - 1)]!,
  };
  acquire(ctx, 0);
  const lease = startLiveness(ctx, subscription, 'g', { store, ttlMs, everyMs: 10, askForMs: 300, rejoinEveryMs: 200 });
  stops.push(async () => {
    await lease.stop();
    await log.close();
  });
  return { ctx, evicted, evictedAt, asked: () => asked };
}

describe('a host that stalled longer than its lease', () => {
  it('still a member: its appends wait for the answer, then it goes on with its partitions', async () => {
    const w = world([true]);
    await sleep(30);
    stall(3 * TTL);
    const alive = w.ctx.alive();
    expect(alive).toBeInstanceOf(Promise);
    expect(await alive).toBe(true);
    expect(w.ctx.partitions.has(0)).toBe(true);
    expect(w.ctx.fenced).toBe(false);
    expect(w.ctx.alive()).toBe(true);
    expect(w.evicted).toEqual([]);
  });

  it('the group moved on: the appends are refused, it drops what it held and takes the new assignment over afresh', async () => {
    const w = world([false]);
    await sleep(30);
    const held = w.ctx.partitions.get(0)!;
    stall(3 * TTL);
    expect(await w.ctx.alive()).toBe(false);
    expect(held.revoked).toBe(true);
    expect(w.ctx.fenced).toBe(true);
    onAssigned(w.ctx, [0]);
    expect(w.ctx.fenced).toBe(false);
    expect(w.ctx.partitions.get(0)).not.toBe(held);
    await w.ctx.partitions.get(0)!.ready;
  });

  it('no answer: it asks again, then leaves the group to rejoin, and again while no assignment comes', async () => {
    const w = world([null, null, null, null, null, null]);
    await sleep(30);
    stall(3 * TTL);
    expect(await w.ctx.alive()).toBe(false);
    expect(w.asked()).toBeGreaterThan(1);
    expect(w.ctx.fenced).toBe(true);
    expect(w.ctx.partitions.size).toBe(0);
    expect(w.evicted).toEqual([['me']]);
    for (let i = 0; i < 100 && w.evicted.length < 2; i++) await sleep(10);
    expect(w.evicted.length).toBeGreaterThanOrEqual(2);
    // Each leave that brought no assignment doubles the wait before the next (200 ms, then
    // 400): leaving at a fixed pace could restart a slow rebalance before it settles.
    for (let i = 0; i < 200 && w.evicted.length < 3; i++) await sleep(10);
    expect(w.evicted.length).toBeGreaterThanOrEqual(3);
    expect(w.evictedAt[2]! - w.evictedAt[1]!).toBeGreaterThanOrEqual(400);
    onAssigned(w.ctx, [0]);
    expect(w.ctx.fenced).toBe(false);
    expect(w.ctx.partitions.has(0)).toBe(true);
  });

  it('no answer at first, then still a member: it goes on', async () => {
    const w = world([null, true]);
    await sleep(30);
    stall(3 * TTL);
    expect(await w.ctx.alive()).toBe(true);
    expect(w.ctx.partitions.has(0)).toBe(true);
  });
});

describe('a host whose timers are punctual but whose renewals do not go through', () => {
  it('holds its appends and asks the group before its lease can run out (the others would take it for dead)', async () => {
    // A lease of 1 s renewed every 10 ms (margin: 2 renewals), roomy enough that a loaded
    // machine's late timers do not decide the outcome.
    const ttl = 1_000;
    const renewals: { hang: boolean; lastAt?: number } = { hang: false };
    const w = world([true], renewals, ttl);
    await sleep(30);
    expect(w.ctx.alive()).toBe(true);
    renewals.hang = true; // from now on no renewal lands, while the timer goes on firing every 10 ms
    await sleep(100);
    expect(w.ctx.alive()).toBe(true); // the lease still has more than its margin left
    // Less than the margin left: not sure of the partitions any more, though its timers are punctual.
    let alive = w.ctx.alive();
    for (let i = 0; i < 300 && alive === true; i++) {
      await sleep(10);
      alive = w.ctx.alive();
    }
    expect(alive).toBeInstanceOf(Promise);
    // Not before less than its margin was left since the last renewal that went through.
    expect(performance.now() - renewals.lastAt!).toBeGreaterThanOrEqual(ttl - 2 * 10 - 1);
    renewals.hang = false;
    expect(await alive).toBe(true);
    expect(w.ctx.partitions.has(0)).toBe(true);
    for (let i = 0; i < 20 && w.ctx.alive() !== true; i++) await sleep(10);
    expect(w.ctx.alive()).toBe(true);
  });
});
