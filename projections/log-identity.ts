import type { LogIdentity } from '../runtime/log-identity.ts';
import type { Query } from '../stores/sql.ts';

/** The read models were built from another event log than this process's: nothing is projected or served from them. */
export class ReadModelOfAnotherLog extends Error {
  readonly code = 'read_model_of_another_log';
}

/**
 * Claims the read models for this process's log: the first log to open them is recorded, any
 * other is refused (its checkpoints would skip or re-apply records, its rows would show another
 * log's conversations). `where` names the database for the message. With `claim: false` (a
 * command that only reads or checks) nothing is recorded: read models no log has claimed yet
 * are left for the first process that builds them, so that a look with a mistyped namespace
 * does not take a shared database for a log of nothing.
 */
export async function claimReadModel(q: Query, log: LogIdentity, where: string, o: { claim?: boolean } = {}): Promise<void> {
  if (o.claim !== false) await q.query('INSERT INTO log_identity (id, log, log_where) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING', [log.id, log.where]);
  const [row] = await q.query<{ log: string; log_where: string; recorded_at: Date | string }>('SELECT log, log_where, recorded_at FROM log_identity WHERE id = 1');
  if (!row || row.log === log.id) return;
  const since = new Date(row.recorded_at).toISOString();
  throw new ReadModelOfAnotherLog(
    `the read models in ${where} were built from another event log (${row.log_where}, id ${row.log}, since ${since}), not from ${log.where} (id ${log.id}). ` +
      'Give this log read models of its own (another DATABASE_SCHEMA or database, or unset DATABASE_URL for the embedded ones), ' +
      'or replace these with ones rebuilt from this log: npx gemello replay --projection readmodel --restart',
  );
}

/** After a rebuild from `log`: the read models are that log's now. */
export async function recordReadModelLog(q: Query, log: LogIdentity): Promise<void> {
  await q.query(
    `INSERT INTO log_identity (id, log, log_where) VALUES (1, $1, $2)
     ON CONFLICT (id) DO UPDATE SET log = EXCLUDED.log, log_where = EXCLUDED.log_where, recorded_at = now()`,
    [log.id, log.where],
  );
}
