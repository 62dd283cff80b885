import { KeyDestroyed } from '../../sealing/keys.ts';
import { decide } from '../decide.ts';
import { EffectCancelled, type EffectOutcome } from '../effects.ts';
import { commit } from './commit.ts';
import { NotOwner } from './context.ts';
import type { Actor, Generation, HostContext, Partition } from './context.ts';
import { startGeneration } from './live-reply.ts';
import type { Speech } from '../ports.ts';
import type { EventEnvelope } from '../../events/schemas.ts';
import type { ConversationState } from '../state.ts';
import { run } from './mailbox.ts';
import { scheduleFlowWork } from './flow-runner.ts';

/** Starts the side effects the actor's state asks for (the first pending prompt, the first pending audio) that are not running yet. */
export function scheduleEffects(ctx: HostContext, part: Partition, actor: Actor): void {
  if (ctx.stopping || part.revoked) return;
  const promptSeq = actor.state.pendingPrompts[0];
  if (promptSeq !== undefined && !actor.inFlight.has(`p${promptSeq}`)) {
    startReply(ctx, part, actor, promptSeq, actor.state, actor.traces.get(promptSeq) ?? null, !actor.quiet.has(promptSeq));
  }
  const replySeq = actor.state.pendingAudio[0];
  if (replySeq !== undefined && !actor.inFlight.has(`a${replySeq}`)) {
    actor.inFlight.add(`a${replySeq}`);
    void runEffect(ctx, part, actor, `a${replySeq}`, () => ctx.work.audio(actor.state, replySeq, actor.traces.get(replySeq) ?? null, spokenReply(actor, replySeq)));
  }
  scheduleFlowWork(ctx, part, actor, runEffect);
}

/**
 * Asks the model for the reply to the prompt at promptSeq, in `state` (the actor's, or the
 * one a commit under way makes: then `recorded` says whether the prompt made it into the log).
 */
function startReply(ctx: HostContext, part: Partition, actor: Actor, promptSeq: number, state: ConversationState, traceparent: string | null, live: boolean, recorded?: Promise<boolean>): Generation {
  const key = `p${promptSeq}`;
  actor.inFlight.add(key);
  const g = startGeneration(ctx, actor, promptSeq, live);
  void runEffect(ctx, part, actor, key, async () => {
    const outcome = await ctx.work.reply(actor.id, state, promptSeq, traceparent, live ? { signal: g.abort.signal, onText: g.onText } : { signal: g.abort.signal });
    if (recorded && !(await recorded)) throw new Unrecorded();
    // The deltas are out before the reply's event, and add up to its text.
    if (!g.stopped) await g.settle(outcome.command.type === 'RecordReply' ? outcome.command.text : null);
    return outcome;
  }, g);
  return g;
}

/** The prompt a reply was asked for ahead of its append did not reach the log: the reply is dropped. */
class Unrecorded extends Error {}

/** The conversation refused an effect's outcome (deciding it threw): the same outcome would be refused again. */
class Refused extends Error {}

/** Seconds between attempts at an effect that failed before it had an outcome: 1, 2, 4 … up to a minute. */
const retryDelayMs = (failures: number) => Math.min(60_000, 1000 * 2 ** Math.min(failures, 6));

/**
 * The model is asked for the reply to a prompt nobody follows live while its PromptReceived
 * is being appended, instead of after (the append's round trip off every reply's time).
 * Returns what to call once the append is done: a prompt that did not reach the log has its
 * request aborted and its outcome dropped (it never answers a prompt recorded later in its
 * place); null when nothing was started. A streamed reply waits for its prompt's append, so
 * no text goes out for a prompt the log does not hold.
 */
export function replyAhead(ctx: HostContext, part: Partition, actor: Actor, next: ConversationState, envs: EventEnvelope[], traceparent: string | null): ((recorded: boolean) => void) | null {
  if (ctx.stopping || part.revoked) return null;
  const promptSeq = next.pendingPrompts[0];
  if (promptSeq === undefined || !actor.quiet.has(promptSeq) || actor.inFlight.has(`p${promptSeq}`)) return null;
  if (!envs.some((e) => e.type === 'PromptReceived' && e.seq === promptSeq)) return null;
  let settle!: (recorded: boolean) => void;
  const recorded = new Promise<boolean>((r) => (settle = r));
  const g = startReply(ctx, part, actor, promptSeq, next, traceparent, false, recorded);
  return (ok) => {
    if (!ok) g.abort.abort();
    settle(ok);
  };
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

/**
 * Runs a side effect, then records its outcome through the mailbox. If recording fails (the
 * log is away), the same outcome is recorded again a second later: the model is not asked
 * again while the broker is down. Nothing of a failed write can have landed for this actor:
 * a write that landed replaces it (rebuilt from the log), and the new actor finds the work done.
 * An effect that failed before it had an outcome is made again after 1 s, 2 s, 4 s … (a
 * minute at most), and nothing asks for it meanwhile; an outcome the conversation refuses is
 * dropped, logged, and not made again until the conversation's actor is made anew.
 */
export async function runEffect(ctx: HostContext, part: Partition, actor: Actor, key: string, outcome: () => Promise<EffectOutcome>, generation?: Generation): Promise<void> {
  let produced: EffectOutcome | null = null;
  try {
    produced = await outcome();
    const { command, traceparent } = produced;
    await run(actor, async () => {
      let events;
      try {
        events = decide(command, actor.state, ctx.flows?.setting ?? null);
      } catch (err) {
        throw new Refused((err as Error).message);
      }
      if (events.length) {
        await commit(ctx, part, actor, events, { causationId: null, correlationId: null, traceparent });
        scheduleEffects(ctx, part, actor);
      }
    });
    actor.inFlight.delete(key);
    actor.failures.delete(key);
    generation?.end();
  } catch (err) {
    generation?.end();
    const kept = produced;
    // Called off (the conversation erased, its flow ended, the host let it go): nothing to record or retry.
    if (err instanceof EffectCancelled) {
      actor.inFlight.delete(key);
      actor.failures.delete(key);
      return;
    }
    if (err instanceof Unrecorded || err instanceof NotOwner || err instanceof KeyDestroyed || ctx.stopping) actor.inFlight.delete(key);
    // The prompt may be recorded again (its command redelivered): it is asked for anew then.
    if (err instanceof Unrecorded) return void (part.actors.get(actor.id) === actor && scheduleEffects(ctx, part, actor));
    if (err instanceof NotOwner || err instanceof KeyDestroyed || ctx.stopping) return;
    if (err instanceof Refused) {
      // Left in flight: not made again (no second backend call) until the conversation's actor is made anew (a restart, a takeover).
      actor.failures.delete(key);
      ctx.m.errors.inc({ kind: 'effect_refused' });
      return void ctx.logger.warn(`the outcome of ${key} of ${actor.id} was refused (${err.message}); it is made again when the conversation is next taken up (a restart or a takeover)`);
    }
    // Still in flight until the retry below: nothing else asks for it meanwhile (no second call, no shorter wait).
    const failures = kept ? 0 : (actor.failures.get(key) ?? 0);
    if (!kept) actor.failures.set(key, failures + 1);
    const delay = kept ? 1000 : retryDelayMs(failures);
    ctx.m.errors.inc({ kind: kept ? 'effect_record_failed' : 'effect_failed' });
    ctx.logger.warn(`${kept ? 'recording ' : ''}${key} of ${actor.id} failed (${(err as Error).message}); retrying in ${delay / 1000} s`);
    setTimeout(() => {
      const current = part.actors.get(actor.id) === actor && !part.revoked && !ctx.stopping;
      // Still this actor's work (in flight meanwhile, so nothing asks for it twice): the outcome it has is recorded.
      if (current && kept) return void runEffect(ctx, part, actor, key, async () => kept);
      actor.inFlight.delete(key);
      if (current) scheduleEffects(ctx, part, actor);
    }, delay).unref?.();
  }
}
