import { decodeEvents } from '../../events/codec.ts';
import { withoutContent } from '../../sealing/personal.ts';
import { TOPICS } from '../../log/port.ts';
import { createAppender } from '../appender.ts';
import { TailIndex } from '../tail.ts';
import { actorFor } from './activate.ts';
import { hasPendingWork } from './context.ts';
import type { HostContext, Partition } from './context.ts';
import { fold } from '../state.ts';
import { run } from './mailbox.ts';

/** The group settled: releases the partitions no longer assigned, takes the new ones over. */
export function onAssigned(ctx: HostContext, assigned: number[]): void {
  ctx.epoch++;
  // Settled while this host was in doubt after a stall: a partition assigned again may have
  // been another host's in between, so what is held of it is read again.
  const afresh = ctx.doubting;
  ctx.fenced = false;
  const set = new Set(assigned);
  for (const id of [...ctx.partitions.keys()]) if (afresh || !set.has(id)) release(ctx, id);
  const taken = assigned.filter((id) => !ctx.partitions.has(id));
  if (taken.length) ctx.logger.info(`assigned partitions ${assigned.join(',')}: taking ${taken.join(',')} over`);
  for (const id of taken) acquire(ctx, id);
}

/** Takes a partition over: reads the log from the checkpoint, then activates every conversation seen there. */
export function acquire(ctx: HostContext, id: number): Partition {
  const { log, snapshots, keys, logger } = ctx;
  const part: Partition = { id, ready: Promise.resolve(), tail: new TailIndex(0), appender: null, actors: new Map(), revoked: false, checkpoint: null };
  ctx.partitions.set(id, part);
  part.ready = (async () => {
    const t0 = performance.now();
    const [snapCp, rmCp] = await Promise.all([
      snapshots.getCheckpoint(id).catch(() => null),
      ctx.readModel ? ctx.readModel.coveredUntil(id).catch(() => null) : null,
    ]);
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
    });
    part.appender = createAppender({ log, topic: TOPICS.events, partition: id, next: end, onForeign: (from, to) => reconcile(ctx, part, from, to) });
    part.checkpoint = snapCp;
    // A conversation with events after the checkpoint may owe work, and activating it finds out
    // (before the checkpoint, everything is in snapshots and nothing is owed: the tail reaches
    // back to the read model's coverage only for recovery). A tail from the start holds whole
    // conversations: their fold says at once which owe work, and only those are woken (a
    // partition of 200 conversations after a flushed Redis took > 8 s when all were activated).
    let ids = [...part.tail.conversations()];
    if (start === 0) ids = ids.filter((cid) => hasPendingWork(fold(cid, part.tail.eventsOf(cid), undefined, ctx.historyMessages)));
    else ids = ids.filter((cid) => part.tail.eventsOf(cid).some((e) => e.position.offset >= snapCp!));
    await Promise.all(ids.map((cid) => run(actorFor(ctx, part, cid), async () => {})));
    if (end > start) logger.info(`partition ${id}: read ${end - start} records from offset ${start} in ${(performance.now() - t0).toFixed(0)} ms; ${ids.length} conversations active${snapCp === null ? ' (no checkpoint: read from the start)' : ''}`);
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
  for (const id of touched) {
    part.actors.delete(id);
    await ctx.snapshots.delete(id).catch(() => {});
  }
  // Woken again at once: work they owe is found and resumed without waiting for a command.
  if (!part.revoked) for (const id of touched) actorFor(ctx, part, id);
}

/** Another host owns the partition now: stop writing. No snapshot is written, since the new owner's may already be newer. */
export function release(ctx: HostContext, id: number): void {
  const part = ctx.partitions.get(id);
  if (!part) return;
  part.revoked = true;
  ctx.partitions.delete(id);
  ctx.logger.info(`partition ${id} released (${part.actors.size} actors dropped)`);
}
