import { NotOwner } from './context.ts';
import type { HostContext, Partition } from './context.ts';

/**
 * How long an append waits for a rebalance to end before it is refused: the group's rebalance
 * timeout (10 s) and some. A host whose group has not settled by then is not a sure owner.
 */
export const HOLD_MAX_MS = 12_000;

/**
 * The group begins to rebalance (this host's consumer is told so, and rejoins): any partition
 * it owns may be another host's when the group settles, and that host reads the partition's end
 * the moment it is assigned. So from now on nothing more is sent (commit() and the appender's
 * last check before each write wait) until onAssigned says what this host keeps: a kept
 * partition goes on, a revoked one's waiting appends are refused, unwritten. Without this, the
 * host went on appending to partitions it was losing until its own assignment reached it, and
 * a write landing after the next owner had read the end doubled a seq.
 */
export function holdWrites(ctx: HostContext): void {
  if (ctx.hold) return;
  let release!: () => void;
  const until = new Promise<void>((r) => (release = r));
  ctx.hold = { until, release, since: performance.now() };
  ctx.logger.info(`the group rebalances: appends wait until it says which of partitions ${[...ctx.partitions.keys()].join(',') || '(none)'} stay here`);
}

/** The group settled (onAssigned has marked what was revoked): held appends go on or are refused. */
export function releaseWrites(ctx: HostContext): void {
  const h = ctx.hold;
  if (!h) return;
  ctx.hold = null;
  ctx.logger.info(`the group settled: appends held ${(performance.now() - h.since).toFixed(0)} ms go on (those of partitions no longer here are refused)`);
  h.release();
}

/**
 * Resolves when `part` may be written now; rejects (NotOwner, nothing sent) if it was revoked,
 * or if the group has been rebalancing for longer than HOLD_MAX_MS. Synchronous (undefined) when
 * no rebalance is under way: the common path costs no extra turn.
 */
export function writable(ctx: HostContext, part: Partition): void | Promise<void> {
  if (part.revoked) throw new NotOwner(`partition ${part.id} is not owned by this host`);
  const h = ctx.hold;
  if (!h) return;
  return (async () => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const left = Math.max(0, HOLD_MAX_MS - (performance.now() - h.since));
    const settled = await Promise.race([h.until.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), left)))]);
    clearTimeout(timer);
    if (!settled) throw new NotOwner(`partition ${part.id}: the group has been rebalancing for ${HOLD_MAX_MS} ms; this host cannot be sure it still owns it`);
    if (part.revoked) throw new NotOwner(`partition ${part.id} was given to another host in a rebalance`);
    // Another rebalance began meanwhile: wait for that one too.
    return writable(ctx, part);
  })();
}

/**
 * The last check before a write of `part` goes to the log (the appender's guard): the host is
 * not in doubt after a stall (a write queued behind one in flight when the host froze is sent
 * when the answer comes, before any timer has run), and no rebalance is moving the partition.
 */
export function beforeWrite(ctx: HostContext, part: Partition): void | Promise<void> {
  if (part.revoked) throw new NotOwner(`partition ${part.id} is not owned by this host`);
  const alive = ctx.alive();
  if (alive === true) return writable(ctx, part);
  return alive.then((ok) => {
    if (!ok) throw new NotOwner(`partition ${part.id}: this host was frozen and cannot be sure it still owns it`);
    return writable(ctx, part);
  });
}
