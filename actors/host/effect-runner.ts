import { KeyDestroyed } from '../../sealing/keys.ts';
import { decide } from '../decide.ts';
import type { EffectOutcome } from '../effects.ts';
import { commit } from './commit.ts';
import { NotOwner } from './context.ts';
import type { Actor, Generation, HostContext, Partition } from './context.ts';
import { startGeneration } from './live-reply.ts';
import type { Speech } from '../ports.ts';
import { run } from './mailbox.ts';
import { scheduleFlowWork } from './flow-runner.ts';

/** Starts the side effects the actor's state asks for (the first pending prompt, the first pending audio) that are not running yet. */
export function scheduleEffects(ctx: HostContext, part: Partition, actor: Actor): void {
  if (ctx.stopping || part.revoked) return;
  const promptSeq = actor.state.pendingPrompts[0];
  if (promptSeq !== undefined && !actor.inFlight.has(`p${promptSeq}`)) {
    actor.inFlight.add(`p${promptSeq}`);
    const live = !actor.quiet.has(promptSeq);
    const g = startGeneration(ctx, actor, promptSeq, live);
    void runEffect(ctx, part, actor, `p${promptSeq}`, async () => {
      const outcome = await ctx.work.reply(actor.id, actor.state, promptSeq, actor.traces.get(promptSeq) ?? null, live ? { signal: g.abort.signal, onText: g.onText } : { signal: g.abort.signal });
      // The deltas are out before the reply's event, and add up to its text.
      if (!g.stopped) await g.settle(outcome.command.type === 'RecordReply' ? outcome.command.text : null);
      return outcome;
    }, g);
  }
  const replySeq = actor.state.pendingAudio[0];
  if (replySeq !== undefined && !actor.inFlight.has(`a${replySeq}`)) {
    actor.inFlight.add(`a${replySeq}`);
    void runEffect(ctx, part, actor, `a${replySeq}`, () => ctx.work.audio(actor.state, replySeq, spokenReply(actor, replySeq)));
  }
  scheduleFlowWork(ctx, part, actor, runEffect);
}

/** The whole audio of a reply spoken sentence by sentence (its speaker is let go once asked), or undefined. */
function spokenReply(actor: Actor, replySeq: number): (() => Promise<Speech | null | 'cancelled'>) | undefined {
  const text = actor.state.messages.find((m) => m.seq === replySeq)?.content;
  for (const [promptSeq, sp] of actor.speakers) {
    if (sp.text === null || sp.text !== text) continue;
    actor.speakers.delete(promptSeq);
    return () => sp.whole();
  }
  return undefined;
}

/** Runs a side effect, then records its outcome through the mailbox; retried later if recording fails. */
export async function runEffect(ctx: HostContext, part: Partition, actor: Actor, key: string, outcome: () => Promise<EffectOutcome>, generation?: Generation): Promise<void> {
  try {
    const { command, traceparent } = await outcome();
    await run(actor, async () => {
      const events = decide(command, actor.state, ctx.flows?.setting ?? null);
      if (events.length) {
        await commit(ctx, part, actor, events, { causationId: null, correlationId: null, traceparent });
        scheduleEffects(ctx, part, actor);
      }
    });
    actor.inFlight.delete(key);
    generation?.end();
  } catch (err) {
    actor.inFlight.delete(key);
    generation?.end();
    if (err instanceof NotOwner || err instanceof KeyDestroyed || ctx.stopping) return;
    ctx.m.errors.inc({ kind: 'effect_record_failed' });
    ctx.logger.warn(`recording ${key} of ${actor.id} failed (${(err as Error).message}); retrying in 1 s`);
    setTimeout(() => part.actors.get(actor.id) === actor && scheduleEffects(ctx, part, actor), 1000).unref?.();
  }
}
