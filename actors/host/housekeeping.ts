import { hasPendingWork } from './context.ts';
import type { HostContext, Partition } from './context.ts';
import { writeSnapshot } from './snapshot.ts';

/** Passivates idle actors (snapshot first) and writes each partition's checkpoint. */
export async function housekeeping(ctx: HostContext): Promise<void> {
  const cutoff = Date.now() - ctx.idleMs;
  for (const part of ctx.partitions.values()) {
    if (!part.appender) continue;
    for (const actor of [...part.actors.values()]) {
      if (actor.lastUsed > cutoff || actor.busy > 0 || actor.inFlight.size > 0 || hasPendingWork(actor.state)) continue;
      try {
        if (actor.unsnapshottedFrom !== null) await writeSnapshot(ctx, actor);
        if (actor.busy === 0 && actor.unsnapshottedFrom === null) part.actors.delete(actor.id);
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
export async function writeCheckpoint(ctx: HostContext, part: Partition): Promise<void> {
  if (!part.appender || part.revoked) return;
  let cp = part.appender.next;
  for (const a of part.actors.values()) {
    if (a.unsnapshottedFrom !== null) cp = Math.min(cp, a.unsnapshottedFrom);
    if (a.pendingFrom !== null) cp = Math.min(cp, a.pendingFrom);
  }
  if (cp !== part.checkpoint) {
    await ctx.snapshots.putCheckpoint(part.id, cp).catch((err) => ctx.logger.warn(`checkpoint of partition ${part.id}: ${(err as Error).message}`));
    part.checkpoint = cp;
  }
  let keepFrom = cp;
  if (ctx.readModel) {
    const covered = await ctx.readModel.coveredUntil(part.id).catch(() => null);
    keepFrom = Math.min(keepFrom, covered ?? part.tail.start);
  }
  part.tail.trim(keepFrom);
}
