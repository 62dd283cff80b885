import type { Snapshot } from '../ports.ts';
import type { HostContext, Partition } from './context.ts';

/** How long what was read ahead for a conversation waits for its activation before it is let go. */
const WARM_KEPT_MS = 5_000;
/** Conversations a host handing a partition over names for the next owner, at most (the most recently used). */
export const ACTIVE_HINTED = 256;
/** Only conversations used this recently are named. */
const ACTIVE_WITHIN_MS = 60_000;

/**
 * Reads ahead, side by side, what the first activation of these conversations needs: their
 * snapshots (one read each, all at once) and their data keys (one statement; the key store
 * keeps them and a lookup meanwhile waits for it). Called when a partition is taken over,
 * with the conversations its last owner had active, while the checkpoint and the log's end are
 * read, and with a batch's conversations before its commands are handled. Only a speed-up:
 * each snapshot read ahead is used once, by the conversation's first activation in this
 * ownership (before anything of ours is written for it), and checked against the tail like
 * any other; a conversation that was not read ahead reads its own.
 */
export function warm(ctx: HostContext, part: Partition, ids: Iterable<string>): void {
  const fresh = warmSnapshots(ctx, part, ids);
  if (ctx.keys && fresh.length) void ctx.keys.get(fresh).catch(() => {});
}

/**
 * Partitions just assigned: reads ahead the conversations their last owner named when it
 * handed them over (ActorHost.stop), the keys of all of them in one statement.
 */
export async function warmHinted(ctx: HostContext, parts: Partition[]): Promise<void> {
  const { getActive } = ctx.snapshots;
  if (!getActive) return;
  const named = await Promise.all(parts.map((p) => getActive.call(ctx.snapshots, p.id).catch(() => [] as string[])));
  const fresh = parts.flatMap((p, i) => warmSnapshots(ctx, p, named[i]!));
  if (ctx.keys && fresh.length) await ctx.keys.get(fresh).catch(() => {});
}

/** Starts reading the snapshots of those not in memory nor read already; returns them. */
function warmSnapshots(ctx: HostContext, part: Partition, ids: Iterable<string>): string[] {
  const fresh: string[] = [];
  if (part.revoked) return fresh;
  for (const id of ids) if (!part.actors.has(id) && !part.warm.has(id)) fresh.push(id);
  const reads = fresh.map((id) => {
    const read = ctx.snapshots.get(id);
    read.catch(() => {});
    part.warm.set(id, read);
    return read;
  });
  if (fresh.length) {
    const t = setTimeout(() => {
      fresh.forEach((id, i) => part.warm.get(id) === reads[i] && part.warm.delete(id));
    }, WARM_KEPT_MS);
    t.unref?.();
  }
  return fresh;
}

/** The snapshot read ahead for the conversation, if any: taken (a later activation reads its own). */
export function takeWarm(part: Partition, id: string): Promise<Snapshot | null> | undefined {
  const read = part.warm.get(id);
  part.warm.delete(id);
  return read;
}

/** The conversations of the partition used most recently, for the next owner's read-ahead. */
export function activeIds(part: Partition, now = Date.now()): string[] {
  return [...part.actors.values()]
    .filter((a) => now - a.lastUsed <= ACTIVE_WITHIN_MS && !a.state.erased)
    .sort((a, b) => b.lastUsed - a.lastUsed)
    .slice(0, ACTIVE_HINTED)
    .map((a) => a.id);
}
