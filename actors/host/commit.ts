import { SpanKind } from '@opentelemetry/api';
import { encodeSealedEvent, envelope } from '../../events/codec.ts';
import { hasPersonalContent } from '../../sealing/personal.ts';
import type { DomainEvent, EventEnvelope, LoggedEvent } from '../../events/schemas.ts';
import type { ConversationState } from '../state.ts';
import { contextFrom, inSpan, traceparentOf } from '../../telemetry/trace.ts';
import { fold } from '../state.ts';
import { NotOwner, openWork } from './context.ts';
import type { Actor, HostContext, Partition } from './context.ts';
import { writable } from './hold.ts';
import { writeSnapshot } from './snapshot.ts';

export type CommitMeta = { causationId: string | null; correlationId: string | null; traceparent: string | null };

/**
 * Appends a decision's events to the actor's partition (sealed with its key) and folds them
 * into its state. Runs inside the actor's mailbox; the caller schedules the effects the new
 * state asks for. `folded` is told the state the events make, and the events, while they
 * are being appended (the state is the actor's only once the append succeeded).
 */
export async function commit(ctx: HostContext, part: Partition, actor: Actor, events: DomainEvent[], meta: CommitMeta, folded?: (next: ConversationState, envs: EventEnvelope[]) => void): Promise<LoggedEvent[]> {
  if (part.revoked || !part.appender) throw new NotOwner(`partition ${part.id} is not owned by this host`);
  const alive = ctx.alive();
  if (alive !== true && (!(await alive) || part.revoked)) throw new NotOwner(`partition ${part.id}: this host was frozen and cannot be sure it still owns it`);
  // The key is made with the conversation's first content (get-or-create: the gateway may have made it).
  if (ctx.keys && !actor.key && events.some((e) => hasPersonalContent(e.type))) actor.key = await ctx.keys.create(actor.id);
  // A write of this partition failed and may have landed: what did is learnt from the log
  // first, and an actor whose state it moved past has been replaced (its decision is void).
  if (part.appender.inDoubt) await part.appender.settled();
  // A rebalance under way: wait for the group to say whether the partition stays here.
  const held = writable(ctx, part);
  if (held) await held;
  if (part.revoked) throw new NotOwner(`partition ${part.id} is not owned by this host`);
  if (actor.replaced) throw new NotOwner(`conversation ${actor.id} was rebuilt from the log after a write in doubt; this actor writes nothing more`);
  const key = actor.key;
  const { envs, next, base } = await inSpan(ctx.tracer, 'event.append', {
    parent: contextFrom(meta.traceparent),
    kind: SpanKind.PRODUCER,
    attributes: { 'conversation.id': actor.id, 'event.seq': actor.state.seq + 1, 'event.types': events.map((e) => e.type).join(','), 'messaging.kafka.partition': part.id },
  }, async (span, spanCtx) => {
    // The events carry this span's context: what they cause downstream (projections, the socket, a snapshot) hangs under their append.
    const envs = envelope(actor.id, actor.state.seq, events, { ...meta, traceparent: traceparentOf(spanCtx) ?? meta.traceparent, now: ctx.now(), newId: ctx.newId });
    const next = fold(actor.id, envs, actor.state, ctx.historyMessages);
    const appended = part.appender!.append(envs.map((e) => encodeSealedEvent(e, key)));
    try {
      folded?.(next, envs);
    } catch (err) {
      ctx.logger.warn(`after folding ${actor.id}: ${(err as Error).message}`);
    }
    const base = await appended;
    span.setAttribute('messaging.kafka.offset', base);
    return { envs, next, base };
  });
  const logged = envs.map((e, i) => ({ ...e, position: { partition: part.id, offset: base + i } }) as LoggedEvent);
  for (const e of logged) part.tail.add(e);
  actor.state = next;
  actor.lastTrace = meta.traceparent;
  actor.position = logged[logged.length - 1]!.position;
  actor.unsnapshottedFrom ??= base;
  actor.sinceSnapshot += logged.length;
  for (const e of logged) {
    if (e.type === 'PromptReceived') actor.traces.set(e.seq, meta.traceparent);
    // The reply's speech is recorded under the reply's append, in its prompt's trace.
    else if (e.type === 'ReplyGenerated' && next.pendingAudio.includes(e.seq)) actor.traces.set(e.seq, e.traceparent);
  }
  settlePending(actor, base);
  ctx.m.events.inc({}, logged.length);
  if (actor.sinceSnapshot >= ctx.snapshotEvery) {
    void writeSnapshot(ctx, actor, contextFrom(envs[0]!.traceparent)).catch((err) => ctx.logger.warn(`snapshot of ${actor.id} failed: ${(err as Error).message}`));
  }
  for (const e of logged) {
    if (e.type === 'FlowEnded') ctx.m.flowsEnded.inc({ flow: next.flow?.flowId ?? '', reason: e.data.reason });
    else if (e.type === 'FlowTransferred') ctx.m.flowTransfers.inc({ flow: next.flow?.flowId ?? '', to: e.data.to });
  }
  return logged;
}

/**
 * After a commit at `base`: work that opened in it is recorded at `base` (at or before the
 * event that opened it), work no longer open is forgotten (and the traces of answered
 * prompts and spoken replies), and pendingFrom is where the oldest work still open was recorded.
 */
export function settlePending(actor: Actor, base: number): void {
  const open = openWork(actor.state);
  for (const k of actor.pendingAt.keys()) if (!open.has(k)) actor.pendingAt.delete(k);
  let from: number | null = null;
  for (const k of open) {
    if (!actor.pendingAt.has(k)) actor.pendingAt.set(k, base);
    const at = actor.pendingAt.get(k)!;
    from = from === null ? at : Math.min(from, at);
  }
  const { pendingPrompts, pendingAudio } = actor.state;
  for (const seq of actor.traces.keys()) if (!pendingPrompts.includes(seq) && !pendingAudio.includes(seq)) actor.traces.delete(seq);
  for (const seq of actor.quiet) if (!pendingPrompts.includes(seq)) actor.quiet.delete(seq);
  actor.pendingFrom = from;
}
