import { randomUUID } from 'node:crypto';
import { eraseCommand } from '../actors/command-client.ts';
import type { CommandClient } from '../actors/command-client.ts';
import type { Db } from '../stores/sql.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { Metrics } from '../telemetry/metrics.ts';

export type RetentionOptions = {
  /** GEMELLO_RETENTION_DAYS: a conversation with no event for this long is erased; 0 keeps everything. */
  days: number;
  db: Db;
  commands: CommandClient;
  metrics: Metrics;
  logger: Logger;
  /** The clock (tests move it on). */
  now?: () => Date;
  /** Between sweeps (default 1 h); the first comes `firstAfterMs` (default 30 s) after start. */
  everyMs?: number;
  firstAfterMs?: number;
  /** Conversations one sweep erases at most (default 500; the next sweep takes the rest), and at once (default 8). */
  batch?: number;
  parallel?: number;
  /** How long each erasure waits for its actor host's answer (default 10 s). */
  waitMs?: number;
  /** How long a sweep's lease holds without renewal (default 60 s, at least 4 waits): a crashed sweeper's runs out then. */
  leaseMs?: number;
};

const DAY_MS = 86_400_000;

// One statement each, outside any transaction: the row is the lock, and nothing is held
// while the sweep waits for actor hosts. Taken when free, run out, or already this holder's.
const TAKE_LEASE = `
INSERT INTO retention_lease (id, holder, until) VALUES (1, $1, now() + make_interval(secs => $2::double precision))
ON CONFLICT (id) DO UPDATE SET holder = EXCLUDED.holder, until = EXCLUDED.until
WHERE retention_lease.until < now() OR retention_lease.holder = EXCLUDED.holder
RETURNING holder`;
const GIVE_BACK_LEASE = `DELETE FROM retention_lease WHERE holder = $1`;

/** What one sweep did. */
export type SweepResult = { cutoff: string; found: number; erased: number; pending: number; failed: number; /** Another gateway was sweeping. */ skipped?: boolean };

/**
 * Erases conversations older than the retention period through the normal erasure path: an
 * EraseConversation command (as the operator, `via: "retention"`) to the conversation's actor
 * host, which records ConversationErased, destroys the data key and the snapshot; the
 * projection then drops the rows (and kept voice). "Older": no event since the cutoff, by the
 * read model. Several gateways may sweep: erasing twice is harmless.
 */
export function createRetention(o: RetentionOptions) {
  const now = o.now ?? (() => new Date());
  const batch = o.batch ?? 500;
  const parallel = o.parallel ?? 8;
  const counted = o.metrics.counter('gemello_retention_erased_total', 'Conversations the retention job erased (outcome: erased, pending: the command waits for an actor host, failed)');
  const sweeps = o.metrics.counter('gemello_retention_sweeps_total', 'Retention sweeps run');
  const last = o.metrics.gauge('gemello_retention_last_sweep_seconds', 'When the retention job last swept (unix seconds)');
  let timer: ReturnType<typeof setTimeout> | null = null;
  let running: Promise<SweepResult> | null = null;

  /** The conversations past retention now (a batch of them, oldest first), with their last event. */
  async function due(at = now()): Promise<{ cutoff: string; conversations: { id: string; lastEventAt: string }[] }> {
    const cutoff = new Date(at.getTime() - o.days * DAY_MS).toISOString();
    const rows = await o.db.query<{ id: string; last: Date | string }>(
      `SELECT id, COALESCE(last_event_at, started_at) AS last FROM conversations WHERE erased_at IS NULL AND COALESCE(last_event_at, started_at) < $1 ORDER BY COALESCE(last_event_at, started_at), id LIMIT $2`,
      [cutoff, batch],
    );
    return { cutoff, conversations: rows.map((r) => ({ id: r.id, lastEventAt: new Date(r.last).toISOString() })) };
  }

  const leaseMs = o.leaseMs ?? Math.max(60_000, 4 * (o.waitMs ?? 10_000));
  const holder = randomUUID();
  const takeLease = async () => (await o.db.query(TAKE_LEASE, [holder, leaseMs / 1000])).length > 0;

  /**
   * One sweeper per deployment (per schema): the sweep holds the row of `retention_lease`,
   * renewed as it goes, so gateways that sweep at the same time skip instead of sending the
   * same erasures twice. A lease, not a lock held in a transaction: a sweep waits for actor
   * hosts for minutes, and a transaction open that long pins one of the pool's connections
   * (and dies under idle_in_transaction_session_timeout).
   */
  async function sweepOnce(): Promise<SweepResult> {
    if (!(await takeLease())) return { cutoff: '', found: 0, erased: 0, pending: 0, failed: 0, skipped: true };
    try {
      return await sweepNow();
    } finally {
      await o.db.query(GIVE_BACK_LEASE, [holder]).catch(() => {});
    }
  }

  async function sweepNow(): Promise<SweepResult> {
    const at = now();
    const { cutoff, conversations: rows } = await due(at);
    const result: SweepResult = { cutoff, found: rows.length, erased: 0, pending: 0, failed: 0 };
    const queue = rows.map((r) => r.id);
    let renewed = Date.now();
    let lost = false;
    const worker = async () => {
      for (let id = queue.shift(); id !== undefined && !lost; id = queue.shift()) {
        // No actor host answers (each erasure waits its full time): leave the rest to the next sweep.
        if (result.pending >= parallel && result.erased === 0) break;
        if (Date.now() - renewed > leaseMs / 3) {
          renewed = Date.now();
          // Run out (this process stalled) and taken by another gateway: it sweeps the rest.
          if (!(await takeLease())) lost = true;
          if (lost) break;
        }
        const outcome = await erase(id, at).catch((err: Error) => ({ type: 'failed' as const, message: err.message }));
        result[outcome.type === 'erased' ? 'erased' : outcome.type === 'pending' ? 'pending' : 'failed']++;
        counted.inc({ outcome: outcome.type === 'erased' || outcome.type === 'pending' ? outcome.type : 'failed' });
        if (outcome.type === 'failed') o.logger.warn(`retention: erasing ${id} failed: ${outcome.message}`);
      }
    };
    await Promise.all(Array.from({ length: Math.min(parallel, queue.length) }, worker));
    sweeps.inc();
    last.set(at.getTime() / 1000);
    if (rows.length) o.logger.info(`retention: ${result.erased} conversations with no event since ${cutoff} erased (GEMELLO_RETENTION_DAYS=${o.days})${result.pending ? `, ${result.pending} waiting for their actor host` : ''}${result.failed ? `, ${result.failed} failed` : ''}`);
    return result;
  }

  async function erase(conversationId: string, at: Date): Promise<{ type: 'erased' | 'pending' } | { type: 'failed'; message: string }> {
    const cmd = eraseCommand({ conversationId, commandId: randomUUID(), principal: null, by: 'retention', via: 'retention', reason: `no event for ${o.days} days (GEMELLO_RETENTION_DAYS)`, now: at });
    const n = await o.commands.ask(cmd, o.waitMs ?? 10_000);
    if (!n) return { type: 'pending' };
    if (n.type === 'erased') return { type: 'erased' };
    return { type: 'failed', message: n.type === 'rejected' ? `${n.code}: ${n.message}` : `unexpected answer ${n.type}` };
  }

  /** Erases what is past retention now (one batch); sweeps do not overlap. */
  const sweep = (): Promise<SweepResult> => (running ??= sweepOnce().finally(() => (running = null)));

  return {
    sweep,
    due,
    /** Sweeps on a timer (nothing with days = 0). */
    start(): void {
      if (o.days <= 0 || timer) return;
      const tick = (ms: number) => {
        timer = setTimeout(() => {
          sweep().catch((err: Error) => o.logger.warn(`retention: sweep failed (${err.message}); next in ${Math.round((o.everyMs ?? 3_600_000) / 1000)} s`)).finally(() => timer && tick(o.everyMs ?? 3_600_000));
        }, ms);
        timer.unref?.();
      };
      tick(o.firstAfterMs ?? 30_000);
    },
    stop(): void {
      if (timer) clearTimeout(timer);
      timer = null;
    },
  };
}

export type Retention = ReturnType<typeof createRetention>;
