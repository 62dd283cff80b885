import { decodeEvents } from '../../events/codec.ts';
import { withoutContent } from '../../sealing/personal.ts';
import { TOPICS } from '../../log/port.ts';
import { createAppender } from '../appender.ts';
import { TailIndex } from '../tail.ts';
import { actorFor } from './activate.ts';
import { hasPendingWork, NotOwner } from './context.ts';
import type { HostContext, Partition } from './context.ts';
import { fold } from '../state.ts';
import { beforeWrite, releaseWrites } from './hold.ts';
import { cancelFlowEffect } from './flow-runner.ts';
import { run } from './mailbox.ts';
import { warm, warmHinted } from './warm.ts';

/** The group settled: releases the partitions no longer assigned, takes the new ones over. */
export function onAssigned(ctx: HostContext, assigned: number[]): void {
  ctx.epoch++;
  // Settled while this host was in doubt after a stall: a partition assigned again may have
  // been another host's in between, so what is held of it is read again.
  const afresh = ctx.doubting;
  ctx.fenced = false;
  const set = new Set(assigned);
  release(ctx, [...ctx.partitions.keys()].filter((id) => afresh || !set.has(id)));
  // Appends held since the rebalance began go on now, those of revoked partitions refused.
  releaseWrites(ctx);
  const taken = assigned.filter((id) => !ctx.partitions.has(id));
  if (taken.length) ctx.logger.info(`assigned partitions ${assigned.join(',')}: taking ${taken.join(',')} over`);
  const parts = taken.map((id) => acquire(ctx, id));
  // The conversations their last owner had active are read ahead meanwhile: their first
  // commands find them (nearly) ready. A hint: it only saves time.
  if (parts.length) void warmHinted(ctx, parts);
}

/** Takes a partition over: reads the log from the checkpoint, then activates every conversation seen there. */
export function acquire(ctx: HostContext, id: number): Partition {
  const { log, snapshots, keys, logger } = ctx;
  const part: Partition = { id, ready: Promise.resolve(), tail: new TailIndex(0), appender: null, actors: new Map(), revoked: false, checkpoint: null, takenOver: false, warm: new Map() };
  ctx.partitions.set(id, part);
  part.ready = (async () => {
    const t0 = performance.now();
    // The log's end is asked for beside the checkpoint and the coverage (one round trip fewer
    // before the partition is ready): nobody writes into it now but this host.
    const [snapCp, rmCp, ends] = await Promise.all([
      snapshots.getCheckpoint(id).catch(() => null),
      ctx.readModel ? ctx.readModel.coveredUntil(id).catch(() => null) : null,
      log.endOffsets(TOPICS.events).catch(() => null),
    ]);
    const t1 = performance.now();
    // Work still owed (a reply, audio, a flow's call) lies after a host's checkpoint; the read
    // model's coverage says only what was projected. Without a checkpoint (its owner died in its
    // first second, or the snapshot store was flushed) nothing says where owed work begins: from
    // the start. Before the coverage, too, so that the read-model tier can continue its states.
    const start = snapCp === null ? 0 : Math.min(snapCp, rmCp ?? snapCp);
    part.tail = new TailIndex(start);
    const end = await log.read(TOPICS.events, id, start, async (records) => {
      for (const e of await decodeEvents(records, keys)) {
        if (e.type === 'ConversationErased') {
          // What was read before the erasure is not kept in memory.
          part.tail.update(e.conversationId, withoutContent);
          keys?.forget(e.conversationId);
        }
        part.tail.add(e);
      }
    }, ends?.[id]);
    const t2 = performance.now();
    part.appender = createAppender({ log, topic: TOPICS.events, partition: id, next: end, guard: () => beforeWrite(ctx, part), onForeign: (from, to) => reconcile(ctx, part, from, to), onDoubt: (from) => settleDoubt(ctx, part, from) });
    part.checkpoint = snapCp;
    // A conversation with events after the checkpoint may owe work, and activating it finds out
    // (before the checkpoint, everything is in snapshots and nothing is owed: the tail reaches
    // back to the read model's coverage only for recovery). A tail from the start holds whole
    // conversations: their fold says at once which owe work, and only those are woken (a
    // partition of 200 conversations after a flushed Redis took > 8 s when all were activated).
    let ids = [...part.tail.conversations()];
    if (start === 0) ids = ids.filter((cid) => hasPendingWork(fold(cid, part.tail.eventsOf(cid), undefined, ctx.historyMessages)));
    else ids = ids.filter((cid) => part.tail.eventsOf(cid).some((e) => e.position.offset >= snapCp!));
    warm(ctx, part, ids);
    await Promise.all(ids.map((cid) => run(actorFor(ctx, part, cid), async () => {})));
    part.takenOver = true;
    const ms = (a: number, b: number) => (b - a).toFixed(0);
    if (end > start) logger.info(`partition ${id}: read ${end - start} records from offset ${start} in ${ms(t0, performance.now())} ms (checkpoint ${ms(t0, t1)} ms, log ${ms(t1, t2)} ms, waking ${ms(t2, performance.now())} ms); ${ids.length} conversations active${snapCp === null ? ' (no checkpoint: read from the start)' : ''}`);
  })();
  part.ready.catch((err) => {
    logger.error(`taking partition ${id} over failed: ${(err as Error).message}`);
    if (ctx.partitions.get(id) === part) ctx.partitions.delete(id);
  });
  return part;
}

/** Another writer appended into an owned partition: those records come first in the log, so the actors they touch are rebuilt. */
async function reconcile(ctx: HostContext, part: Partition, from: number, to: number): Promise<void> {
  ctx.m.foreign.inc({}, to - from);
  ctx.logger.warn(`partition ${part.id}: ${to - from} records at ${from}..${to - 1} were written by another host; rebuilding the conversations they touch`);
  const touched = new Set<string>();
  await ctx.log.read(TOPICS.events, part.id, from, async (records) => {
    for (const e of await decodeEvents(records.filter((r) => r.offset < to), ctx.keys)) {
      part.tail.add(e);
      touched.add(e.conversationId);
    }
  });
  // Our snapshot of such a conversation may hold what we wrote after theirs (which readers drop).
  for (const id of touched) await ctx.snapshots.delete(id).catch(() => {});
  rebuild(ctx, part, touched, from);
}

/**
 * A write of ours failed on our side, so what it held may be in the log all the same: reads
 * the partition from `from` (the offset after our last acknowledged write) to its end and
 * rebuilds the conversations found there, before anything else is decided or written for
 * them. Resolves with the end: where our next write lands.
 */
async function settleDoubt(ctx: HostContext, part: Partition, from: number): Promise<number> {
  if (part.revoked) throw new NotOwner(`partition ${part.id} is not owned by this host`);
  const touched = new Set<string>();
  const end = await ctx.log.read(TOPICS.events, part.id, from, async (records) => {
    for (const e of await decodeEvents(records, ctx.keys)) {
      part.tail.add(e);
      touched.add(e.conversationId);
    }
  });
  ctx.m.appendsInDoubt.inc({ landed: end > from ? 'yes' : 'no' });
  if (end > from) ctx.logger.warn(`partition ${part.id}: an append failed, but ${end - from} records at ${from}..${end - 1} are in the log; rebuilding the ${touched.size} conversations they touch before writing on`);
  else ctx.logger.info(`partition ${part.id}: an append failed and nothing of it landed (the log ends at ${end})`);
  rebuild(ctx, part, touched, from);
  return end;
}

/**
 * Replaces the actors of conversations whose state the log has moved past: the old actor
 * writes nothing more (its commands go to the new one), the new one recovers from the tail
 * and resumes the work it owes. Until it has, it holds the checkpoint at what the old one
 * had not snapshotted.
 */
function rebuild(ctx: HostContext, part: Partition, touched: Set<string>, from: number): void {
  for (const id of touched) {
    // What was read ahead for it predates those records.
    part.warm.delete(id);
    const old = part.actors.get(id);
    if (old) {
      old.replaced = true;
      part.actors.delete(id);
      // The new actor asks the model again for the prompt it finds owed (one reply stream, not two), and makes the flow's call (one at a time).
      old.generation?.abort.abort();
      cancelFlowEffect(old);
    }
    if (part.revoked) continue;
    // Woken again at once: work they owe is found and resumed without waiting for a command.
    const actor = actorFor(ctx, part, id);
    actor.unsnapshottedFrom = Math.min(from, old?.unsnapshottedFrom ?? from, old?.pendingFrom ?? from);
  }
}

/** Another host owns these partitions now: stop writing. No snapshot is written, since the new owner's may already be newer. Logged in one line. */
export function release(ctx: HostContext, ids: Iterable<number>): void {
  const released: number[] = [];
  let dropped = 0;
  for (const id of ids) {
    const part = ctx.partitions.get(id);
    if (!part) continue;
    part.revoked = true;
    ctx.partitions.delete(id);
    // The new owner makes the flows' calls under way here again (the same idempotency key): not both hosts at once.
    for (const actor of part.actors.values()) cancelFlowEffect(actor);
    released.push(id);
    dropped += part.actors.size;
  }
  if (released.length) ctx.logger.info(`partition${released.length > 1 ? 's' : ''} ${released.join(',')} released (${dropped} actors dropped)`);
}
