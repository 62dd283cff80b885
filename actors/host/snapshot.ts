import { SpanKind } from '@opentelemetry/api';
import type { Context } from '@opentelemetry/api';
import { inSpan } from '../../telemetry/trace.ts';
import type { Actor, HostContext } from './context.ts';

/**
 * Writes the actor's snapshot and moves its unsnapshotted mark past what it covers. One
 * write at a time per conversation: a call while one is under way waits for it and then
 * writes the state as it is by then, and calls meanwhile share that second write. So a
 * store that falls behind holds up at most two writes per conversation, never a queue of
 * them (each held its whole state as JSON: the memory of issue 15's collapse).
 */
export function writeSnapshot(ctx: HostContext, actor: Actor, parent?: Context): Promise<void> {
  if (actor.snapshotting) {
    actor.snapshotNext ??= actor.snapshotting.catch(() => {}).then(() => {
      actor.snapshotNext = null;
      return writeSnapshot(ctx, actor, parent);
    });
    return actor.snapshotNext;
  }
  const write = writeOnce(ctx, actor, parent).finally(() => {
    actor.snapshotting = null;
  });
  actor.snapshotting = write;
  return write;
}

async function writeOnce(ctx: HostContext, actor: Actor, parent?: Context): Promise<void> {
  if (!actor.position) return;
  if (actor.state.erased) {
    // An erased conversation keeps no snapshot: it recovers from the read model or the log.
    await ctx.snapshots.delete(actor.id);
    actor.unsnapshottedFrom = null;
    actor.sinceSnapshot = 0;
    return;
  }
  const state = actor.state;
  const position = actor.position;
  await inSpan(ctx.tracer, 'snapshot.write', { parent, kind: SpanKind.CLIENT, attributes: { 'conversation.id': actor.id, 'event.seq': state.seq } }, () =>
    ctx.snapshots.put({ conversationId: actor.id, seq: state.seq, eventId: state.lastEventId, position, state }),
  );
  // Erased while this one was written: it must not outlive the erasure.
  if (actor.state.erased) await ctx.snapshots.delete(actor.id);
  if (actor.state.seq === state.seq) {
    actor.unsnapshottedFrom = null;
    actor.sinceSnapshot = 0;
  } else if (actor.unsnapshottedFrom !== null && actor.unsnapshottedFrom <= position.offset) {
    actor.unsnapshottedFrom = position.offset + 1;
  }
}
