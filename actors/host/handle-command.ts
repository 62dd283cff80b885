import { SpanKind } from '@opentelemetry/api';
import { encodeNotice } from '../../events/codec.ts';
import { KeyDestroyed } from '../../sealing/keys.ts';
import type { DomainEvent, EventEnvelope, LoggedEvent } from '../../events/schemas.ts';
import type { ConversationState } from '../state.ts';
import type { LogRecord } from '../../log/port.ts';
import { contextFrom, inSpan, traceparentOf } from '../../telemetry/trace.ts';
import { isSealedCommand, openCommand } from '../../sealing/commands.ts';
import { DomainError, WireCommand } from '../commands.ts';
import type { ClientCommand } from '../commands.ts';
import { decide } from '../decide.ts';
import { actorFor } from './activate.ts';
import { commit } from './commit.ts';
import type { Actor, HostContext, Partition } from './context.ts';
import { replyAhead, scheduleEffects } from './effect-runner.ts';
import { completeErasure } from './erasure.ts';
import { run } from './mailbox.ts';
import { silence } from './speaker.ts';
import { writeSnapshot } from './snapshot.ts';
import { warm } from './warm.ts';
import { confirmedDataProblem } from '../twins.ts';

/**
 * Handles a batch of commands of one partition: each goes to its conversation's mailbox.
 * Resolves when every command of the batch is in the log, so only then are its offsets
 * committed.
 */
export async function handleCommands(ctx: HostContext, part: Partition, records: LogRecord[]): Promise<void> {
  await part.ready;
  const commands: Array<{ cmd: WireCommand; offset: number }> = [];
  for (const record of records) {
    let cmd: WireCommand;
    try {
      const parsed = WireCommand.safeParse(JSON.parse(record.value));
      if (!parsed.success) throw new Error(parsed.error.issues[0]?.message);
      cmd = parsed.data;
    } catch (err) {
      ctx.m.errors.inc({ kind: 'bad_command' });
      ctx.logger.warn(`skipping an invalid command at ${record.partition}/${record.offset}: ${(err as Error).message}`);
      continue;
    }
    commands.push({ cmd, offset: record.offset });
  }
  // Conversations not in memory are read side by side (their keys in one statement).
  warm(ctx, part, new Set(commands.map((c) => c.cmd.conversationId)));
  const work: Promise<void>[] = [];
  for (const { cmd, offset } of commands) {
    const actor = actorFor(ctx, part, cmd.conversationId);
    work.push(run(actor, () => handleCommand(ctx, part, actor, cmd, offset)));
  }
  await Promise.all(work);
}

/** One client command, inside its actor's mailbox: open it, decide, append; a refusal is a `rejected` notice to the sender. */
export async function handleCommand(ctx: HostContext, part: Partition, actor: Actor, wire: WireCommand, offset: number): Promise<void> {
  // A write of this partition failed and may have landed: nothing is decided before the log
  // says what did. A conversation it touched has a new actor, rebuilt from the log, which
  // takes the command (a command whose events landed is a duplicate there).
  if (part.appender?.inDoubt) await part.appender.settled();
  if (actor.replaced) {
    const current = actorFor(ctx, part, actor.id);
    return run(current, () => handleCommand(ctx, part, current, wire, offset));
  }
  const parent = contextFrom(wire.traceparent);
  const attributes = { 'conversation.id': wire.conversationId, 'command.type': wire.type, 'messaging.kafka.partition': part.id, 'messaging.kafka.offset': offset, ...(wire.type === 'SubmitPrompt' ? { 'twin.id': wire.data.twin.id } : {}) };
  await inSpan(ctx.tracer, 'actor.handle', { parent, kind: SpanKind.CONSUMER, attributes }, async (_span, spanCtx) => {
    const reject = async (code: string, message: string) => {
      ctx.m.commands.inc({ type: wire.type, outcome: 'rejected' });
      ctx.m.errors.inc({ kind: code });
      await part.appender!.append([encodeNotice({ type: 'rejected', commandId: wire.commandId, conversationId: wire.conversationId, correlationId: wire.correlationId, code, message })]);
    };
    // The gateway sealed the prompt or data with the conversation's key; a resident actor has it cached.
    if (ctx.keys && !actor.key && isSealedCommand(wire)) actor.key = (await ctx.keys.get([actor.id])).get(actor.id) ?? null;
    const opened = openCommand(wire, actor.key);
    if (!opened) {
      if (actor.state.erased) return reject('conversation_erased', `conversation ${actor.id} was erased; start a new one`);
      return reject('unreadable_command', `the command's content cannot be read with conversation ${actor.id}'s key`);
    }
    const cmd = opened.type === 'StopReply' && allowed(ctx, opened, actor) ? stopping(actor, opened) : opened;
    let events: DomainEvent[];
    try {
      events = decide(cmd, actor.state, ctx.flows?.setting ?? null);
    } catch (err) {
      if (err instanceof DomainError) return reject(err.code, err.message);
      // decide is pure: what it throws it throws again on every delivery, and a batch sent back
      // to the log would hold every conversation of the partition behind this one command.
      ctx.logger.error(`${cmd.type} ${cmd.commandId} of ${actor.id} could not be decided: ${(err as Error).message}`);
      return reject('internal', `conversation ${actor.id} could not take this command; the actor host logged why`);
    }
    // Data a client confirms must fit the twin's fields, whichever gateway socket sent it (a flow's own confirmations are its DDTs' to check).
    for (const e of cmd.type === 'ConfirmData' && actor.state.twin ? events : []) {
      const problem = e.type === 'DataConfirmed' ? confirmedDataProblem(ctx.fieldsOf(actor.state.twin!.id), e.data.data) : null;
      if (problem) return reject('invalid_data', problem);
    }
    ctx.m.commands.inc({ type: cmd.type, outcome: events.length ? 'applied' : 'duplicate' });
    let logged: LoggedEvent[] = [];
    if (events.length) {
      const traceparent = traceparentOf(spanCtx) ?? cmd.traceparent;
      // A stopped reply's last deltas go out before ReplyStopped.
      if (cmd.type === 'StopReply' && actor.generation?.stopped) await actor.generation.settle(null);
      const quiet = cmd.type === 'SubmitPrompt' && cmd.data.stream === false;
      try {
        // A flow's confirmation is critical too: what the flow says after it is appended
        // only once the snapshot holding it is written.
        for (const part_ of splitAfterFlowConfirmations(events)) {
          const ahead: { recorded: ((ok: boolean) => void) | null } = { recorded: null };
          const folded = (next: ConversationState, envs: EventEnvelope[]) => {
            // Nobody follows this prompt's reply live: it is asked for in one piece, while the prompt is appended.
            if (!quiet) return;
            for (const e of envs) if (e.type === 'PromptReceived') actor.quiet.add(e.seq);
            ahead.recorded = replyAhead(ctx, part, actor, next, envs, traceparent);
          };
          try {
            logged.push(...await commit(ctx, part, actor, part_, { causationId: cmd.commandId, correlationId: cmd.correlationId, traceparent }, folded));
          } catch (err) {
            ahead.recorded?.(false);
            throw err;
          }
          ahead.recorded?.(true);
          if (part_[part_.length - 1]!.type === 'DataConfirmed' && cmd.type !== 'ConfirmData') await writeSnapshot(ctx, actor, contextFrom(logged.at(-1)?.traceparent));
        }
      } catch (err) {
        if (err instanceof KeyDestroyed) return reject('conversation_erased', err.message);
        throw err;
      }
      scheduleEffects(ctx, part, actor);
    }
    // A duplicate too (delivered again: its first handling stopped after the append, or its
    // append failed on our side but landed): the client has not been told yet.
    const confirmed = cmd.type !== 'ConfirmData' ? undefined : events.length
      ? logged.find((e) => e.type === 'DataConfirmed')
      : part.tail.eventsOf(actor.id).find((e) => e.type === 'DataConfirmed' && e.causationId === cmd.commandId);
    if (confirmed) {
      // Confirmed data is critical: the snapshot is written before the client is told (traced under the append that made it due).
      await writeSnapshot(ctx, actor, contextFrom(confirmed.traceparent));
      await part.appender!.append([encodeNotice({ type: 'confirmed', commandId: cmd.commandId, conversationId: cmd.conversationId, correlationId: cmd.correlationId, seq: confirmed.seq, data: actor.state.confirmedData }, actor.key)]);
    }
    if (cmd.type === 'EraseConversation') await completeErasure(ctx, part, actor, cmd, events.length > 0);
    if (cmd.type === 'StopReply') actor.generation?.stopped && actor.generation.end();
  });
}

/** The events cut after each confirmation a flow made (the last part may end with one too). */
export function splitAfterFlowConfirmations(events: DomainEvent[]): DomainEvent[][] {
  const parts: DomainEvent[][] = [[]];
  for (const e of events) {
    parts[parts.length - 1]!.push(e);
    if (e.type === 'DataConfirmed' && e.data.flow) parts.push([]);
  }
  return parts.filter((p) => p.length > 0);
}

/** Whether the conversation takes the command (decide is pure: asking costs nothing), so a refused stop cancels nothing. */
function allowed(ctx: HostContext, cmd: ClientCommand, actor: Actor): boolean {
  try {
    decide(cmd, actor.state, ctx.flows?.setting ?? null);
    return true;
  } catch {
    return false;
  }
}

/**
 * A stop, with what the model had generated when it was cancelled: the model's HTTP
 * request is aborted here, and what it sends after is dropped, so the text recorded in
 * ReplyStopped is exactly what streamed.
 */
function stopping(actor: Actor, cmd: Extract<ClientCommand, { type: 'StopReply' }>): ClientCommand {
  // Whatever is being spoken goes silent: no sentence of it is synthesised or sent any more.
  silence(actor);
  const g = actor.generation;
  const { inFlight: _ignored, ...data } = cmd.data; // only the host says what was in flight
  if (!g || g.stopped || actor.state.pendingPrompts[0] !== g.promptSeq || actor.state.recentCommands.includes(cmd.commandId)) return { ...cmd, data };
  g.stopped = true;
  g.abort.abort();
  return { ...cmd, data: { ...data, inFlight: { promptSeq: g.promptSeq, text: g.text } } };
}
