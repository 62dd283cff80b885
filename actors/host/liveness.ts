import type { Subscription } from '../../log/port.ts';
import type { Liveness } from '../ports.ts';
import type { HostContext } from './context.ts';
import { release } from './partitions.ts';

export type LivenessSettings = {
  store: Liveness;
  /** How long a lease lasts: a host silent for longer is taken for dead. */
  ttlMs: number;
  /** How often the lease is renewed and the others' are checked. */
  everyMs: number;
  /** How long a host in doubt asks a group that does not answer before it gives up its partitions (default max(10 s, 10 × ttl)). */
  askForMs?: number;
  /**
   * How long a fenced host waits for an assignment before it leaves the group again (default
   * max(2 s, 5 × ttl)); twice as long after each leave that brought none, up to 8 times this.
   */
  rejoinEveryMs?: number;
};

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const within = <T>(p: Promise<T>, ms: number): Promise<T | null> => Promise.race([p, sleep(ms).then(() => null)]);

/**
 * The lease of this host's group member, renewed every `everyMs`; members whose lease ran out
 * are removed from the group (their partitions move at once, not after the session timeout).
 *
 * Zombie fence: a host whose own timer fired later than its lease (the process was frozen:
 * SIGSTOP, a long pause, a loaded machine) may have been removed and its partitions may have
 * moved. Its appends wait (checked before every append: after a freeze, the I/O that waited
 * runs before the timers) while it renews its lease and asks the group through a heartbeat
 * sent afterwards:
 * - still a member at the same generation: nobody else was given its partitions; it goes on
 *   with everything it holds (a lone host loses nothing to its own stall);
 * - the group moved on: the consumer rejoins, and the new assignment is taken over afresh;
 *   the appends that waited are refused (the work they recorded is found again and redone);
 * - no answer (the broker is away: appends could not land anyway): it asks again for up to
 *   10 s, then drops its partitions and leaves the group, so that it rejoins; while no
 *   assignment comes it leaves again, after a wait that doubles each time (2, 4, 8, 16 s by
 *   default). It never stays without partitions.
 */
export function startLiveness(ctx: HostContext, subscription: Subscription, group: string, settings: LivenessSettings): { stop(): Promise<void> } {
  const { store, ttlMs, everyMs } = settings;
  let lastTick = performance.now();
  /**
   * When the last renewal that went through was made (its expiry is that moment + ttl, by this
   * host's clock): the lease may run out before then, however punctual the timer, if renewals
   * are slow (a starved process or Redis: the one in flight holds the next ones back). Null:
   * no lease of this member yet.
   */
  let renewedAt: number | null = null;
  /** How long before its lease may run out a host stops trusting it: a write sent now must land before the others can take it for dead. */
  const marginMs = 2 * everyMs;
  let warnedLapseAt = -Infinity;
  /** Since when renewals succeed: only a host that keeps its own lease judges the others'. */
  let healthySince: number | null = null;
  let mine: string | null = null;
  let busy = false;
  let stopped = false;
  let doubt: Promise<boolean> | null = null;
  /** When this host last left the group to be given partitions again (null: not fenced by the lease). */
  let leftAt: number | null = null;
  /** How long a fenced host waits for an assignment before it leaves the group again. */
  const rejoinEveryMs = settings.rejoinEveryMs ?? Math.max(2_000, 5 * ttlMs);
  // Each leave starts a rebalance that every member has to rejoin. Where rejoining takes longer
  // than the wait (kafkajs on a loaded machine: its rejoin retries back off), leaving again at a
  // fixed pace could restart the rebalance before it settles, again and again; so the wait doubles.
  let rejoinWaitMs = rejoinEveryMs;
  const askForMs = settings.askForMs ?? Math.max(10_000, 10 * ttlMs);

  const leave = () => {
    leftAt = performance.now();
    const me = subscription.memberId?.() ?? mine;
    if (me) void ctx.log.evict?.(group, [me]).catch((err) => ctx.logger.warn(`leaving the group to rejoin: ${(err as Error).message}`));
  };

  const fenceSelf = (why: string) => {
    const owned = [...ctx.partitions.keys()];
    release(ctx, owned);
    ctx.fenced = true;
    ctx.logger.warn(`${why}: dropped partitions ${owned.join(',') || '(none)'}, writes nothing until the group assigns it partitions again, and leaves the group to rejoin`);
    leave();
  };

  /** Whether this host still owns what it holds after a stall of `frozenMs` (one question at a time). */
  const askGroup = (frozenMs: number, lapsed = false): Promise<boolean> => {
    if (doubt) return doubt;
    ctx.doubting = true;
    // This host's own view of the others' leases is as stale as its own: judge nobody for a while.
    healthySince = null;
    ctx.m.errors.inc({ kind: lapsed ? 'lease_lapsing' : 'host_frozen' });
    const epoch = ctx.epoch;
    const t0 = performance.now();
    const owned = [...ctx.partitions.keys()].join(',') || '(none)';
    if (!lapsed) ctx.logger.warn(`this host was frozen for ${frozenMs.toFixed(0)} ms (lease ${ttlMs} ms): its appends wait until the group says whether it still owns partitions ${owned}`);
    // (Renewals failing for a while, Redis away: said once every 5 s, not at every question.)
    else if (t0 - warnedLapseAt > 5_000) {
      warnedLapseAt = t0;
      ctx.logger.warn(`this host's lease was last renewed ${frozenMs.toFixed(0)} ms ago (lease ${ttlMs} ms): its appends wait until the group says whether it still owns partitions ${owned}`);
    }
    doubt = (async () => {
      const me = subscription.memberId?.() ?? null;
      const at = performance.now();
      if (me) await within(store.renew(me, ttlMs).then(() => void (renewedAt = at)).catch(() => {}), ttlMs);
      // A host that read this lease as run out just before the renewal has removed this member by now.
      await sleep(2 * everyMs);
      // No answer (the broker is away: this host could not append meanwhile either): ask again,
      // for a while, before giving its partitions up on its own.
      let member: boolean | null = null;
      for (const until = performance.now() + askForMs; member === null && !stopped && ctx.epoch === epoch && performance.now() < until; ) {
        const asked = performance.now();
        member = (await subscription.stillMember?.(Math.max(1_000, 2 * ttlMs))) ?? null;
        if (member === null) await sleep(Math.max(0, 250 - (performance.now() - asked)));
      }
      const ms = (performance.now() - t0).toFixed(0);
      // Stopping meanwhile: the hand-over decides, not this question.
      if (stopped) return false;
      if (ctx.epoch !== epoch) {
        ctx.logger.info(`the group settled again while this host was in doubt (${ms} ms): it took its new assignment over afresh`);
        return false;
      }
      if (member === true) {
        ctx.logger.info(`the group still counts this host at the same generation (${ms} ms): it goes on with partitions ${[...ctx.partitions.keys()].join(',') || '(none)'}`);
        return true;
      }
      if (member === false) {
        // A rejoin is under way: the partitions are taken over afresh when it settles.
        release(ctx, [...ctx.partitions.keys()]);
        ctx.fenced = true;
        leftAt = performance.now();
        ctx.logger.warn(`the group moved on while this host was frozen (${ms} ms): it dropped its partitions and takes over what the group assigns it now`);
        return false;
      }
      fenceSelf(`the group did not answer whether this host is still a member (${ms} ms)`);
      return false;
    })().finally(() => {
      ctx.doubting = false;
      doubt = null;
    });
    return doubt;
  };

  ctx.alive = () => {
    if (doubt) return doubt;
    const now = performance.now();
    const gap = now - lastTick;
    const age = renewedAt === null ? 0 : now - renewedAt;
    if ((gap <= ttlMs && age <= ttlMs - marginMs) || ctx.stopping) return true;
    if (gap > ttlMs) {
      lastTick = now;
      return askGroup(gap);
    }
    // Punctual timers, but no renewal went through lately: the others may take this host for
    // dead any moment (seen at load ≈ 40: removed while it went on writing, a seq doubled).
    return askGroup(age, true);
  };

  async function tick() {
    const now = performance.now();
    const gap = now - lastTick;
    lastTick = now;
    if (gap > ttlMs && !ctx.stopping && !doubt) void askGroup(gap);
    if (!ctx.fenced) {
      leftAt = null;
      rejoinWaitMs = rejoinEveryMs;
    } else if (leftAt === null || now - leftAt > rejoinWaitMs) {
      ctx.logger.warn(`no partitions assigned ${leftAt === null ? 'since this host was fenced' : `${(now - leftAt).toFixed(0)} ms after leaving the group`}: leaving it again to rejoin`);
      if (leftAt !== null) rejoinWaitMs = Math.min(2 * rejoinWaitMs, 8 * rejoinEveryMs);
      leave();
    }
    if (busy) return;
    busy = true;
    try {
      const me = subscription.memberId?.() ?? null;
      if (me !== mine) {
        if (mine) await store.forget([mine]);
        mine = me;
        renewedAt = null;
      }
      if (!me) return;
      const at = performance.now();
      await store.renew(me, ttlMs);
      if (mine === me) renewedAt = at;
      if (doubt) return;
      healthySince ??= now;
      if (!ctx.log.evict || now - healthySince < 2 * ttlMs) return;
      const dead = (await store.expired()).filter((m) => m !== me);
      if (!dead.length) return;
      ctx.logger.warn(`removing ${dead.length} actor host(s) whose lease ran out from the group: ${dead.join(', ')}`);
      const t0 = performance.now();
      await ctx.log.evict(group, dead).then(
        () => ctx.logger.info(`removed ${dead.length} actor host(s) from the group in ${(performance.now() - t0).toFixed(0)} ms`),
        (err) => ctx.logger.warn(`removing ${dead.join(', ')}: ${(err as Error).message}`),
      );
      await store.forget(dead);
    } catch {
      healthySince = null;
    } finally {
      busy = false;
    }
  }

  const timer = setInterval(() => void tick(), everyMs);
  timer.unref?.();
  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      ctx.alive = () => true;
      if (mine) await store.forget([mine]).catch(() => {});
    },
  };
}
