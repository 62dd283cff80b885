import type { Tier } from '../recovery.ts';
import { hasPendingWork, openWork } from './context.ts';
import type { Actor, HostContext, Partition } from './context.ts';
import { scheduleEffects } from './effect-runner.ts';
import { newActor, run } from './mailbox.ts';
import { writeSnapshot } from './snapshot.ts';
import { takeWarm } from './warm.ts';

/**
 * The conversation's actor in this partition, made if it is not resident: the first task of
 * its mailbox brings the state back, so every later task sees it recovered. A failed
 * recovery evicts the actor, so the next command tries again.
 */
export function actorFor(ctx: HostContext, part: Partition, conversationId: string): Actor {
  const resident = part.actors.get(conversationId);
  if (resident) return resident;
  const actor = newActor(conversationId);
  part.actors.set(conversationId, actor);
  run(actor, async () => {
    try {
      await activate(ctx, part, actor);
    } catch (err) {
      part.actors.delete(conversationId);
      throw err;
    }
  }).catch((err) => ctx.logger.error(`activation of ${conversationId} failed: ${(err as Error).message}`));
  return actor;
}

/** Recovers the actor's state by tier, and resumes the work it left pending. */
export async function activate(ctx: HostContext, part: Partition, actor: Actor): Promise<Tier> {
  const t0 = performance.now();
  const r = await ctx.recovery.recover(actor.id, part.id, part.tail, takeWarm(part, actor.id));
  actor.state = r.state;
  actor.position = r.position;
  const ms = performance.now() - t0;
  ctx.m.recoveries.inc({ tier: r.tier });
  ctx.m.recoveryMs.observe(ms, { tier: r.tier });
  if (r.skipped.length && r.state.seq > 0) ctx.logger.info(`recovered ${actor.id} at seq ${r.state.seq} from ${r.tier} (${r.skipped.join('; ')})`);
  if (r.tier !== 'snapshot' || r.folded > 0) {
    // Not (fully) in a snapshot yet: pin the checkpoint at the tail and write one.
    if (r.state.seq > 0) {
      actor.unsnapshottedFrom = part.tail.start;
      void writeSnapshot(ctx, actor).catch(() => {});
    }
  }
  if (hasPendingWork(actor.state)) {
    // Recorded at or after the checkpoint the tail starts at (the checkpoint never passes pending work).
    for (const k of openWork(actor.state)) actor.pendingAt.set(k, part.tail.start);
    actor.pendingFrom = part.tail.start;
    resumeTraces(part, actor);
    scheduleEffects(ctx, part, actor);
  }
  return r.tier;
}

/**
 * The traces of the work it resumes, from the appends that made it owed (in the tail: the
 * checkpoint never passes pending work), so a reply or speech made after a takeover or a
 * restart is still in its prompt's trace.
 */
function resumeTraces(part: Partition, actor: Actor): void {
  const { pendingPrompts, pendingAudio } = actor.state;
  for (const e of part.tail.eventsOf(actor.id)) {
    const owed = (e.type === 'PromptReceived' && pendingPrompts.includes(e.seq)) || (e.type === 'ReplyGenerated' && pendingAudio.includes(e.seq));
    if (owed && e.traceparent && !actor.traces.has(e.seq)) actor.traces.set(e.seq, e.traceparent);
  }
}
