import type { SnapshotStore } from '../actors/ports.ts';
import type { EventLog } from '../log/port.ts';
import { migrate } from '../projections/migrate.ts';
import { eraseKeptCopies } from '../projections/apply.ts';
import { createVoiceProjection } from '../projections/voice.ts';
import type { LoggedKeyStore } from '../sealing/key-store.ts';
import type { LogIdentity } from '../runtime/log-identity.ts';
import type { Db } from '../stores/sql.ts';
import type { Progress } from './progress.ts';
import { replay } from './replay.ts';
import { snapshotsFromReadModel } from './snapshots-from-read-model.ts';
import { copied, plural } from './wording.ts';

export type RestoreDeps = {
  log: EventLog; db: Db; /** null: snapshots are in-process (no REDIS_URL), so there are none to write. */ snapshots: SnapshotStore | null; keys: LoggedKeyStore; progress: Progress;
  /** GEMELLO_KEEP_VOICE: only then is the voice topic read (and made, if it is not there). */
  keepVoice?: boolean;
  historyMessages?: number; signal?: AbortSignal; out?: (line: string) => void; say?: (line: string) => void;
  /** This process's log: recorded as the rebuilt read models' log. */
  identity?: LogIdentity;
};

/**
 * `gemello restore`: rebuilds everything that is not Kafka from Kafka alone (the disaster
 * recovery path): the read-model tables, the data-key cache, the read model, the kept
 * voice clips and the snapshots. Each step can be run again; returns the exit code.
 */
export async function restore(deps: RestoreDeps): Promise<number> {
  const out = deps.out ?? ((l: string) => console.log(l));
  const t0 = performance.now();
  const step = (what: string) => out(`restore: ${what}`);
  const applied = await migrate(deps.db);
  step(applied.length ? `migrations applied: ${applied.join(', ')}` : 'the read-model tables are current');
  // Reads to a topic's end (total not known), told the running count: a line of their own.
  const counting = async <T>(label: string, work: (told: (done: number) => void) => Promise<T>): Promise<T> => {
    let last = 0;
    deps.progress.start(label, 0);
    try {
      return await work((done) => {
        deps.progress.advance(done - last);
        last = done;
      });
    } finally {
      deps.progress.done();
    }
  };
  const keyRecords = await counting('reading the keys topic', (told) => deps.keys.sync(told));
  step(`data keys: ${copied(keyRecords, 'the keys topic', 'the key cache')}`);
  const moved = await deps.keys.migrateLegacy();
  if (moved) step(`data keys: ${plural(moved, 'key')} of an earlier version moved into the keys topic`);
  const code = await replay({ projection: 'readmodel', restart: true }, { log: deps.log, db: deps.db, keys: deps.keys, progress: deps.progress, signal: deps.signal, out, say: deps.say, identity: deps.identity });
  if (code !== 0) return code;
  // After the events: an erased conversation's clips (key destroyed, erased in the read model) are not brought back.
  if (deps.keepVoice) {
    const voice = await counting('reading the voice topic', (told) => createVoiceProjection({ log: deps.log, db: deps.db, keys: deps.keys }).sync(told));
    step(`kept voice: ${copied(voice, 'the voice topic', 'voice_clips')}`);
  } else step('kept voice: not read (GEMELLO_KEEP_VOICE is off; with it on, the projections role fills voice_clips from the topic)');
  // A database backup older than an erasure brings back rows the rebuild keeps (speech, kept voice): they go again.
  const erased = (await deps.db.query<{ id: string }>('SELECT id FROM conversations WHERE erased_at IS NOT NULL')).map((r) => r.id);
  if (erased.length) {
    const removed = await deps.db.tx((q) => eraseKeptCopies(q, erased));
    step(`erased conversations: ${plural(erased.length, 'conversation')} ${erased.length === 1 ? 'stays' : 'stay'} erased${removed ? `; ${plural(removed, 'row')} of their speech or kept voice that the database held again removed` : ''}`);
  }
  // From the rebuilt read model, which holds what the log holds: the log is not read a second time.
  if (!deps.snapshots) {
    step('snapshots: none written (no REDIS_URL: each serving process keeps its own in memory and recovers the rest from the read model and the log)');
    step(`done in ${((performance.now() - t0) / 1000).toFixed(1)} s: the read model holds what the log holds`);
    return 0;
  }
  const snapshots = await snapshotsFromReadModel({ db: deps.db, snapshots: deps.snapshots, progress: deps.progress, historyMessages: deps.historyMessages });
  step(`${plural(snapshots, 'snapshot')} written (from the rebuilt read model)`);
  step(`done in ${((performance.now() - t0) / 1000).toFixed(1)} s: the read model and the snapshots hold what the log holds`);
  return 0;
}
