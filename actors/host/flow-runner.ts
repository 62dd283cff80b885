import { EffectCancelled, type EffectOutcome } from '../effects.ts';
import type { Actor, HostContext, Partition } from './context.ts';
import { readWithModel } from '../flow-read.ts';
import { pinCheckpoint } from './housekeeping.ts';

type RunEffect = (ctx: HostContext, part: Partition, actor: Actor, key: string, outcome: () => Promise<EffectOutcome>) => Promise<void>;

/**
 * Starts what the actor's flow waits on: its side effect (made again, with the same
 * idempotency key, by whoever holds the conversation after a crash), the model's reading
 * of a prompt the parsers could not read, and its noInput timer, armed from the log's
 * due time, so it fires after a restart too (at once when it is already due). Each runs in
 * the trace of what made the flow ask for it (the actor's last append's cause).
 */
export function scheduleFlowWork(ctx: HostContext, part: Partition, actor: Actor, runEffect: RunEffect): void {
  const flows = ctx.flows;
  const flow = actor.state.flow;
  if (!flows || !flow || flow.status !== 'running' || actor.state.erased) {
    cancelFlowEffect(actor);
    return disarm(actor);
  }
  const traceparent = actor.lastTrace;
  const effect = flow.effect;
  // The flow moved on from the call under way (its outcome recorded, or another took its place): nothing more of it is tried.
  if (actor.flowEffect && actor.flowEffect.key !== `f${effect?.key}`) cancelFlowEffect(actor);
  if (effect && !actor.inFlight.has(`f${effect.key}`)) {
    const key = `f${effect.key}`;
    const abort = new AbortController();
    actor.inFlight.add(key);
    actor.flowEffect = { key, abort };
    void runEffect(ctx, part, actor, key, async () => {
      try {
        await pinCheckpoint(ctx, part, actor.pendingFrom);
        if (abort.signal.aborted) throw new EffectCancelled(key);
        const command = await flows.effects.run(flows.setting.of(flow), flow, ctx.now, abort.signal);
        ctx.m.flowEffects.inc({ kind: effect.kind, status: command.status });
        return { command, traceparent };
      } catch (err) {
        throw abort.signal.aborted ? new EffectCancelled(key) : err;
      } finally {
        if (actor.flowEffect?.abort === abort) actor.flowEffect = null;
      }
    });
  }
  const read = flow.read;
  if (read && !actor.inFlight.has(`r${read.promptSeq}`)) {
    actor.inFlight.add(`r${read.promptSeq}`);
    void runEffect(ctx, part, actor, `r${read.promptSeq}`, async () => ({
      command: { type: 'RecordFlowRead', promptSeq: read.promptSeq, value: await readWithModel(flows, actor.state, read.promptSeq).catch(() => null), at: ctx.now().toISOString() },
      traceparent,
    }));
  }
  const timer = flow.timer;
  if (!timer) return disarm(actor);
  if (actor.flowTimer?.seq === timer.seq) return;
  disarm(actor);
  const delay = Math.max(0, Date.parse(timer.dueAt) - ctx.now().getTime());
  const handle = setTimeout(() => {
    if (actor.flowTimer?.seq !== timer.seq) return;
    actor.flowTimer = null;
    if (ctx.stopping || part.revoked || part.actors.get(actor.id) !== actor) return;
    void runEffect(ctx, part, actor, `t${timer.seq}`, async () => ({ command: { type: 'FireFlowTimer', timerSeq: timer.seq, at: ctx.now().toISOString() }, traceparent }));
  }, Math.min(delay, 2 ** 31 - 1));
  handle.unref?.();
  actor.flowTimer = { seq: timer.seq, handle };
  // The timer is in the log; the checkpoint must not pass it, or a restart would not find it.
  void pinCheckpoint(ctx, part, actor.pendingFrom).catch(() => {});
}

/** Calls off the flow's side effect under way in this process: an erasure, a flow that ended or moved on, a host that let the conversation go. */
export function cancelFlowEffect(actor: Actor): void {
  actor.flowEffect?.abort.abort();
  actor.flowEffect = null;
}

function disarm(actor: Actor): void {
  if (actor.flowTimer) clearTimeout(actor.flowTimer.handle);
  actor.flowTimer = null;
}
