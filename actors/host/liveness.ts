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
};

/**
 * The lease of this host's group member, renewed every `everyMs`; members whose lease ran out
 * are removed from the group (their partitions move at once, not after the session timeout).
 *
 * Zombie fence: a host whose own timer fired later than its lease (the process was frozen,
 * e.g. SIGSTOP or a long pause) may have been removed and its partitions may have moved; it
 * drops them before anything else runs, and writes nothing until the group assigns it
 * partitions again. It leaves the group itself too, so a pause that nobody noticed still
 * ends in a clean rebalance instead of partitions that nobody serves.
 */
export function startLiveness(ctx: HostContext, subscription: Subscription, group: string, settings: LivenessSettings): { stop(): Promise<void> } {
  const { store, ttlMs } = settings;
  let lastTick = performance.now();
  /** Since when renewals succeed: only a host that keeps its own lease judges the others'. */
  let healthySince: number | null = null;
  let mine: string | null = null;
  let busy = false;

  const fenceSelf = (frozenMs: number) => {
    const owned = [...ctx.partitions.keys()];
    for (const id of owned) release(ctx, id);
    ctx.fenced = true;
    ctx.m.errors.inc({ kind: 'host_frozen' });
    ctx.logger.warn(`this host was frozen for ${frozenMs.toFixed(0)} ms (lease ${ttlMs} ms): it dropped partitions ${owned.join(',') || '(none)'} and writes nothing until the group assigns it partitions again`);
    if (mine) void ctx.log.evict?.(group, [mine]).catch(() => {});
  };

  // Checked before every append: after a freeze, I/O that waited (a model's answer, a fetched
  // command) is handled before the timers run, so the timer alone would fence too late.
  ctx.alive = () => {
    const gap = performance.now() - lastTick;
    if (gap <= ttlMs) return true;
    lastTick = performance.now();
    fenceSelf(gap);
    return false;
  };

  async function tick() {
    const now = performance.now();
    const gap = now - lastTick;
    lastTick = now;
    if (gap > ttlMs && !ctx.stopping) fenceSelf(gap);
    if (busy) return;
    busy = true;
    try {
      const me = subscription.memberId?.() ?? null;
      if (me !== mine) {
        if (mine) await store.forget([mine]);
        mine = me;
      }
      if (!me) return;
      await store.renew(me, ttlMs);
      healthySince ??= now;
      if (!ctx.log.evict || now - healthySince < 2 * ttlMs) return;
      const dead = (await store.expired()).filter((m) => m !== me);
      if (!dead.length) return;
      ctx.logger.warn(`removing ${dead.length} actor host(s) whose lease ran out from the group: ${dead.join(', ')}`);
      await ctx.log.evict(group, dead).catch((err) => ctx.logger.warn(`removing ${dead.join(', ')}: ${(err as Error).message}`));
      await store.forget(dead);
    } catch {
      healthySince = null;
    } finally {
      busy = false;
    }
  }

  const timer = setInterval(() => void tick(), settings.everyMs);
  timer.unref?.();
  return {
    async stop() {
      clearInterval(timer);
      ctx.alive = () => true;
      if (mine) await store.forget([mine]).catch(() => {});
    },
  };
}
