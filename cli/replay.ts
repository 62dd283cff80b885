import type { EventLog } from '../log/port.ts';
import { RebuildInterrupted, rebuildReadModel } from '../projections/rebuild.ts';
import type { KeyStore } from '../sealing/keys.ts';
import type { LogIdentity } from '../runtime/log-identity.ts';
import type { Db } from '../stores/sql.ts';
import type { Progress } from './progress.ts';
import { plural } from './wording.ts';

/** The projections `replay` can rebuild, with what each one is. */
export const REPLAYABLE: Record<string, string> = {
  readmodel: 'the Postgres read model (conversations, messages, confirmed_data, events)',
};

export type ReplayDeps = {
  log: EventLog;
  db: Db;
  keys: KeyStore;
  progress: Progress;
  signal?: AbortSignal;
  /** What it did (stdout). */
  out?: (line: string) => void;
  /** Each step (stderr). */
  say?: (line: string) => void;
  /** This process's log: recorded as the rebuilt read models' log. */
  identity?: LogIdentity;
};

const n = (x: number) => x.toLocaleString('en-US');

/** What is wrong with replay's flags (the usage to print, exit 2), or null when they name a projection it rebuilds. */
export function replayUsage(flags: { projection?: string | true }): string | null {
  const name = flags.projection;
  if (typeof name === 'string' && REPLAYABLE[name]) return null;
  const known = Object.entries(REPLAYABLE).map(([k, v]) => `  ${k}  ${v}`).join('\n');
  const why = typeof name === 'string' ? (name === 'snapshots' ? 'the Redis snapshots are rebuilt with: gemello snapshots rebuild\n' : `no projection "${name}"\n`) : '';
  return `${why}usage: gemello replay --projection <name> [--restart]\nprojections:\n${known}`;
}

/**
 * `gemello replay --projection <name> [--restart]`: rebuilds a projection from offset 0 into
 * fresh tables and switches over when caught up; returns the exit code.
 */
export async function replay(flags: { projection?: string | true; restart?: string | true }, deps: ReplayDeps): Promise<number> {
  const out = deps.out ?? ((l: string) => console.log(l));
  const say = deps.say ?? ((l: string) => console.error(l));
  const usage = replayUsage(flags);
  if (usage) {
    say(usage);
    return 2;
  }
  const name = flags.projection as string;
  try {
    const r = await rebuildReadModel({ log: deps.log, db: deps.db, keys: deps.keys, name, progress: deps.progress, say, signal: deps.signal, restart: flags.restart === true, identity: deps.identity });
    const rate = r.seconds > 0 ? Math.round(r.records / r.seconds) : r.records;
    out(`replayed ${name} from offset 0${r.resumedFrom ? ` (resumed: ${plural(r.resumedFrom, 'record')} applied by an earlier run)` : ''}: ${plural(r.records, 'log record')} read, ${plural(r.applied, 'event')} applied in ${r.seconds.toFixed(1)} s (${n(rate)} records/s)`);
    out(`switched: schema "${r.live}" now serves the rebuilt tables (${plural(r.counts.conversations, 'conversation')}, ${plural(r.counts.messages, 'message')}, ${plural(r.counts.events, 'event')}), in a switch of ${Math.round(r.switchMs)} ms${r.appliedInSwitch ? ` that also applied the last ${plural(r.appliedInSwitch, 'event')}` : ''}`);
    if (r.old) out(`the old tables are in schema "${r.old}"; drop them once you no longer need them: DROP SCHEMA "${r.old}" CASCADE`);
    else out('the old tables held nothing and were dropped');
    return 0;
  } catch (err) {
    if (err instanceof RebuildInterrupted) {
      say(err.message);
      return 130;
    }
    throw err;
  }
}
