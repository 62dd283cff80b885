import { hasPendingWork } from './context.ts';
import type { HostContext, Partition } from './context.ts';
import { writeSnapshot } from './snapshot.ts';

/** Quiet actors whose snapshots one pass writes at most (the rest wait for the next pass). */
const QUIET_SNAPSHOTS_PER_PASS = 200;

/**
 * Passivates idle actors (snapshot first) and writes each partition's checkpoint. Over
 * `maxActors`, the least recently used actors without work are passivated before their idle
 * time, so memory holds a bounded number of conversations however many arrive. An actor
 * quiet for `quietMs` but not yet idle gets its snapshot written and stays: otherwise every
 * conversation shorter than `snapshotEvery` events held its partition's checkpoint (what a
 * takeover reads) back until its idle time, ~23,000 records behind in the soak.
 */
export async function housekeeping(ctx: HostContext): Promise<void> {
  const now = Date.now();
  const cutoff = now - ctx.idleMs;
  const quietCutoff = now - ctx.quietMs;
  let quietBudget = QUIET_SNAPSHOTS_PER_PASS;
  let resident = 0;
  for (const part of ctx.partitions.values()) resident += part.actors.size;
  // Passivate down to 90% of the bound: one pass makes room for a burst of new conversations.
  let over = resident > ctx.maxActors ? resident - Math.floor(ctx.maxActors * 0.9) : 0;
  let lruCutoff = cutoff;
  if (over > 0) {
    const used = [...ctx.partitions.values()].flatMap((p) => [...p.actors.values()].map((a) => a.lastUsed)).sort((a, b) => a - b);
    lruCutoff = Math.max(cutoff, used[Math.min(used.length - 1, over - 1)]! + 1);
  }
  for (const part of ctx.partitions.values()) {
    if (!part.appender) continue;
    for (const actor of [...part.actors.values()]) {
      if (actor.busy > 0 || actor.inFlight.size > 0 || hasPendingWork(actor.state)) continue;
      if (actor.lastUsed > lruCutoff) {
        if (actor.unsnapshottedFrom !== null && actor.lastUsed <= quietCutoff && quietBudget-- > 0) {
          await writeSnapshot(ctx, actor).catch((err) => ctx.logger.warn(`snapshot of quiet ${actor.id}: ${(err as Error).message}`));
        }
        continue;
      }
      const early = actor.lastUsed > cutoff;
      if (early && over <= 0) continue;
      try {
        if (actor.unsnapshottedFrom !== null) await writeSnapshot(ctx, actor);
        if (actor.busy === 0 && actor.unsnapshottedFrom === null && part.actors.get(actor.id) === actor) {
          part.actors.delete(actor.id);
          if (early) {
            over--;
            ctx.m.evicted.inc();
          }
        }
      } catch (err) {
        ctx.logger.warn(`passivating ${actor.id}: ${(err as Error).message}`);
      }
    }
    await writeCheckpoint(ctx, part);
  }
}

/**
 * The partition's checkpoint: the offset before which every event is in a snapshot and no
 * effect is pending, where a host taking it over starts reading. The tail is trimmed to it
 * (and to what the read model covers).
 */
export async function writeCheckpoint(ctx: HostContext, part: Partition, options: { trim?: boolean } = {}): Promise<void> {
  // In doubt after a stall, the partition may be another host's now: its checkpoint is not ours to move.
  if (!part.appender || part.revoked || ctx.doubting) return;
  let cp = part.appender.next;
  for (const a of part.actors.values()) {
    if (a.unsnapshottedFrom !== null) cp = Math.min(cp, a.unsnapshottedFrom);
    if (a.pendingFrom !== null) cp = Math.min(cp, a.pendingFrom);
  }
  if (cp !== part.checkpoint) {
    await ctx.snapshots.putCheckpoint(part.id, cp).catch((err) => ctx.logger.warn(`checkpoint of partition ${part.id}: ${(err as Error).message}`));
    part.checkpoint = cp;
  }
  // Handing the partition over: nothing more is read from its tail here.
  if (options.trim === false) return;
  let keepFrom = cp;
  if (ctx.readModel) {
    const covered = await ctx.readModel.coveredUntil(part.id).catch(() => null);
    keepFrom = Math.min(keepFrom, covered ?? part.tail.start);
  }
  // The bound holds even when the checkpoint or the projection stands still (a store down,
  // work that never finishes): a resident actor does not need its tail, and a conversation
  // activated later whose events were dropped here recovers from a slower tier (the read
  // model, or its partition read from the start), never wrongly.
  const bound = part.appender.next - ctx.tailMaxEvents;
  if (bound > keepFrom) {
    if (bound > cp) ctx.m.tailTrimmedPastCheckpoint.inc({}, Math.max(0, Math.min(bound, part.appender.next) - Math.max(cp, part.tail.start)));
    keepFrom = bound;
  }
  part.tail.trim(keepFrom);
}

/**
 * Makes sure the partition's checkpoint is at or before the actor's pending work before a
 * side effect the world sees is made: a host taking the partition over reads from the
 * checkpoint, so it finds the work and makes the call again with its key. Without this, a
 * crash before the first checkpoint of a partition is written would leave takeover to the
 * read model's coverage, which says nothing of work still owed.
 */
export async function pinCheckpoint(ctx: HostContext, part: Partition, offset: number | null): Promise<void> {
  if (offset === null || (part.checkpoint !== null && part.checkpoint <= offset)) return;
  await writeCheckpoint(ctx, part);
}
