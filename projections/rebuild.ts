import { keysFor } from '../sealing/keys.ts';
import type { KeyStore } from '../sealing/keys.ts';
import type { EventLog, LogRecord } from '../log/port.ts';
import { TOPICS } from '../log/port.ts';
import { applyBatch, eraseFromOldSchemas } from './apply.ts';
import { loadMigrations, migrate } from './migrate.ts';
import { grantAnalysts } from './analyst-role.ts';
import type { Db, Query } from '../stores/sql.ts';
import type { LogIdentity } from '../runtime/log-identity.ts';
import { recordReadModelLog } from './log-identity.ts';
import { MAX_SCHEMA_CHARS } from '../runtime/config.ts';

/** Progress of long work (cli/progress.ts draws one on the terminal). */
export type RebuildProgress = { start(label: string, total: number): void; advance(n: number): void; done(): void };

export type RebuildOptions = {
  log: EventLog;
  /** The live read model: unqualified names resolve to its schema (DATABASE_SCHEMA, or `public`). */
  db: Db;
  /** The conversations' data keys (the live ones: keys are not rebuilt). */
  keys: KeyStore & { through?(q: Query): KeyStore };
  /** The projection's name, the key of its checkpoints. */
  name?: string;
  progress?: RebuildProgress;
  /** One line for each step, for the operator. */
  say?: (line: string) => void;
  /** Drop what an earlier, interrupted run left and start from offset 0 again. */
  restart?: boolean;
  /** Stops between batches; what was applied stays, and the next run resumes from it. */
  signal?: AbortSignal;
  /** Partitions rebuilt at the same time. */
  concurrency?: number;
  /** How long the switch may wait for the live tables' locks before it gives way and tries again. */
  lockTimeoutMs?: number;
  now?: () => Date;
  /** The log rebuilt from: recorded in the switch as the read models' log (projections/log-identity.ts). */
  identity?: LogIdentity;
};

export type RebuildResult = {
  projection: string;
  /** The schema that serves the read model, before and after. */
  live: string;
  /** Where the old tables are now; null when they held no conversation and no event (a restore into a fresh database), so they were dropped. */
  old: string | null;
  /** Log records applied by earlier, interrupted runs. */
  resumedFrom: number;
  /** Log records read and events applied by this run. */
  records: number;
  applied: number;
  /** Events the live projector had applied and the rebuild not yet when the switch began; applied inside it. */
  appliedInSwitch: number;
  seconds: number;
  /** How long the live tables were locked for the switch. */
  switchMs: number;
  counts: { conversations: number; messages: number; events: number };
};

/** Thrown when the signal stops a rebuild; what was rebuilt stays for the next run. */
export class RebuildInterrupted extends Error {
  readonly code = 'interrupted';
}

/**
 * Every table the migrations create is one or the other, and a table in neither stops the
 * rebuild: when you add one, say here which it is (reset.ts lists the projected ones too).
 * Projected tables are rebuilt and moved by the switch, with the views over them. Kept
 * tables are not projections of the log and stay where they are, untouched: the actor host
 * writes audio and keys while a rebuild runs (a copy would race with it), and a lost key
 * erases its conversation.
 */
export const PROJECTED_TABLES = ['conversations', 'messages', 'confirmed_data', 'events', 'projection_checkpoints'];
export const KEPT_TABLES = ['digital_twins', 'audio_cache', 'voice_clips', 'voice_segments', 'voice_sync', 'audio_uses', 'conversation_keys', 'key_sync', 'retention_lease', 'log_identity', 'schema_migrations'];
/**
 * Kept tables the projection reads while applying (the data keys, to open sealed content):
 * the rebuild finds the live ones through its search path (its writes there, destroying the
 * key of an erased conversation, were done already and change nothing). For the other kept
 * tables the rebuild sees its own empty copies, so what it writes as a side effect (an
 * erasure deleting audio only that conversation used, judged by a half-rebuilt events
 * table) never touches the live rows.
 */
const READ_LIVE_DURING_REBUILD = ['conversation_keys'];
const KIND: Record<string, string> = { r: 'TABLE', p: 'TABLE', v: 'VIEW', m: 'MATERIALIZED VIEW', f: 'FOREIGN TABLE' };
const MAX_IDENT = 63;
const RETRYABLE = new Set(['40P01', '55P03']); // deadlock detected, lock not available

const ident = (name: string) => `"${name.replaceAll('"', '""')}"`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const stamp = (d: Date) => d.toISOString().replace(/[-:]/g, '').replace('T', '_').slice(0, 15);

/** The same database with this search path: unqualified names resolve in these schemas, in order. */
export function inSchema(db: Db, ...schemas: string[]): Db {
  const enter = (q: Query) => q.exec(`SET LOCAL search_path TO ${schemas.map(ident).join(', ')}`);
  return {
    kind: db.kind,
    query: <T>(text: string, params?: unknown[]) => db.tx(async (q) => (await enter(q), q.query<T>(text, params))),
    exec: (script) => db.tx(async (q) => (await enter(q), q.exec(script))),
    tx: (fn) => db.tx(async (q) => (await enter(q), fn(q))),
    ping: () => db.ping(),
    close: async () => {},
  };
}

async function checkpoints(q: Query, schema: string, name: string): Promise<Map<number, number>> {
  const rows = await q.query<{ partition: number; next_offset: number }>(
    `SELECT partition, next_offset FROM ${ident(schema)}.projection_checkpoints WHERE projection = $1`,
    [name],
  );
  return new Map(rows.map((r) => [Number(r.partition), Number(r.next_offset)]));
}

/** Tables and views of a schema, by name, with their kind. */
async function relations(q: Query, schema: string): Promise<Map<string, string>> {
  const rows = await q.query<{ relname: string; relkind: string }>(
    `SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')`,
    [schema],
  );
  return new Map(rows.map((r) => [r.relname, r.relkind]));
}

/** Views and foreign keys outside `schema` that use its tables (they would keep using the old ones). */
async function dependents(q: Query, schema: string): Promise<string[]> {
  const rows = await q.query<{ what: string }>(
    `SELECT DISTINCT 'view ' || vn.nspname || '.' || v.relname AS what
     FROM pg_depend d
     JOIN pg_rewrite rw ON rw.oid = d.objid AND d.classid = 'pg_rewrite'::regclass
     JOIN pg_class v ON v.oid = rw.ev_class JOIN pg_namespace vn ON vn.oid = v.relnamespace
     JOIN pg_class t ON t.oid = d.refobjid AND d.refclassid = 'pg_class'::regclass JOIN pg_namespace tn ON tn.oid = t.relnamespace
     WHERE tn.nspname = $1 AND vn.nspname <> $1
     UNION
     SELECT DISTINCT 'foreign key ' || cn.nspname || '.' || c.relname || ' (' || k.conname || ')'
     FROM pg_constraint k
     JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace cn ON cn.oid = c.relnamespace
     JOIN pg_class t ON t.oid = k.confrelid JOIN pg_namespace tn ON tn.oid = t.relnamespace
     WHERE k.contype = 'f' AND tn.nspname = $1 AND cn.nspname <> $1`,
    [schema],
  );
  return rows.map((r) => r.what).sort();
}

/**
 * Makes `<live>_rebuild` ready to be applied to: created and migrated on the first run,
 * kept (with its checkpoints) on the next ones, made again when it was built by other
 * migrations. Only the projected tables stay in it.
 */
async function prepare(db: Db, target: string, restart: boolean, say: (l: string) => void): Promise<void> {
  const [exists] = await db.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [target]);
  if (exists && restart) {
    await db.exec(`DROP SCHEMA ${ident(target)} CASCADE`);
    say(`--restart: dropped the unfinished rebuild in schema "${target}"`);
  } else if (exists) {
    const want = (await loadMigrations()).map((m) => m.version);
    const have = new Set((await db.query<{ version: string }>(`SELECT version FROM ${ident(target)}.schema_migrations`).catch(() => [])).map((r) => r.version));
    if (want.some((v) => !have.has(v))) {
      await db.exec(`DROP SCHEMA ${ident(target)} CASCADE`);
      say(`schema "${target}" of an unfinished rebuild was made by other migrations (or not finished); starting over`);
    }
  }
  await db.exec(`CREATE SCHEMA IF NOT EXISTS ${ident(target)}`);
  await migrate(inSchema(db, target));
  const rels = await relations(db, target);
  const unknown = [...rels].filter(([rel, kind]) => (kind === 'r' || kind === 'p') && !PROJECTED_TABLES.includes(rel) && !KEPT_TABLES.includes(rel));
  if (unknown.length) {
    throw new Error(`the migrations create ${unknown.map(([r]) => r).join(', ')}, which projections/rebuild.ts does not know: add each to PROJECTED_TABLES (rebuilt from the log) or KEPT_TABLES (left in place)`);
  }
  // Their empty copies go (with any view over them), so the live ones are found through the search path.
  for (const rel of READ_LIVE_DURING_REBUILD) if (rels.has(rel)) await db.exec(`DROP TABLE ${ident(target)}.${ident(rel)} CASCADE`);
}

/**
 * Rebuilds a read-model projection from offset 0 into fresh tables while the live ones keep
 * serving, then switches in one transaction.
 *
 * The fresh tables are the migrations applied to the schema `<live>_rebuild`. Each
 * partition of the log is read from that schema's checkpoints (0 at first) and applied
 * batch by batch, rows and checkpoint in one transaction, exactly as the live projector
 * does: an interrupted rebuild resumes where it stopped. Caught up, the switch locks the
 * live checkpoints (the live projector waits between two batches), applies whatever the
 * live projector had applied beyond the rebuild, so the new checkpoints are nowhere behind
 * the old ones, and moves the projected tables and their views: the live ones to
 * `<live>_old_<time>`, the rebuilt ones into the live schema. Other processes name tables
 * through their search path, so their next statement (a prepared one is planned again)
 * reads the new tables, and the live projector, waiting on the old checkpoint row, goes on
 * with the new one: no event is applied twice (its offset is before the new checkpoint)
 * and none is skipped (the new checkpoints are at or past the old ones).
 */
export async function rebuildReadModel(options: RebuildOptions): Promise<RebuildResult> {
  const { log, db, progress, signal } = options;
  const name = options.name ?? 'readmodel';
  const say = options.say ?? (() => {});
  const concurrency = Math.max(1, options.concurrency ?? 4);
  const lockTimeoutMs = options.lockTimeoutMs ?? 3_000;
  const now = options.now ?? (() => new Date());
  const t0 = performance.now();

  const [cur] = await db.query<{ schema: string | null }>('SELECT current_schema() AS schema');
  const live = cur?.schema;
  if (!live) throw new Error('the read model has no schema: none of the search path exists (run gemello migrate)');
  const target = `${live}_rebuild`;
  if (`${live}_old_${stamp(now())}`.length > MAX_IDENT) throw new Error(`schema name "${live}" is too long to rebuild beside (at most ${MAX_SCHEMA_CHARS} characters)`);

  // The live tables at the same migrations as the rebuilt ones, so they belong together.
  await migrate(db);
  await prepare(db, target, options.restart === true, say);
  // Projected tables are in the rebuild schema; the kept ones are found in the live one.
  const rebuilt = inSchema(db, target, live);
  // The live data keys, read before each transaction (as the live projector does).
  const keyStore = options.keys;

  let records = 0;
  let applied = 0;
  const from = await checkpoints(db, target, name);
  const resumedFrom = [...from.values()].reduce((a, b) => a + b, 0);
  const ends = await log.endOffsets(TOPICS.events);
  const total = ends.reduce((a, end, p) => a + Math.max(0, end - (from.get(p) ?? 0)), 0);
  say(resumedFrom
    ? `resuming the rebuild of ${name} in schema "${target}": ${resumedFrom} of ${ends.reduce((a, b) => a + b, 0)} log records were applied by an earlier run`
    : `rebuilding ${name} from offset 0 into schema "${target}"; schema "${live}" keeps serving meanwhile`);

  const stop = () => {
    if (signal?.aborted) throw new RebuildInterrupted(`interrupted; the rebuild so far is kept in schema "${target}": run the same command again to resume`);
  };
  /** Applies one partition from the rebuild's checkpoint to `until` (default: the log's end as of the call); returns the records read. */
  async function catchUp(partition: number, until: number | null): Promise<number> {
    const [at] = await rebuilt.query<{ next_offset: number }>('SELECT next_offset FROM projection_checkpoints WHERE projection = $1 AND partition = $2', [name, partition]);
    const start = Number(at?.next_offset ?? 0);
    if (until !== null && start >= until) return 0;
    let n = 0;
    await log.read(TOPICS.events, partition, start, async (all: LogRecord[]) => {
      stop();
      const batch = until === null ? all : all.filter((r) => r.offset < until);
      if (!batch.length) return;
      const keys = await keysFor(keyStore, batch);
      const r = await rebuilt.tx((q) => applyBatch(q, name, partition, batch, { keys }));
      for (const e of r.applied) if (e.type === 'ConversationErased') keyStore.forget(e.conversationId);
      n += batch.length;
      records += batch.length;
      applied += r.applied.length;
      if (until !== null) progress?.advance(batch.length);
    });
    return n;
  }
  /** Every partition, up to `ends` (with progress) or to the log's current end. */
  async function pass(ends: number[] | null): Promise<number> {
    const queue = Array.from({ length: log.partitions }, (_, p) => p);
    let n = 0;
    const workers = Array.from({ length: Math.min(concurrency, queue.length) }, async () => {
      for (let p = queue.shift(); p !== undefined; p = queue.shift()) {
        stop();
        n += await catchUp(p, ends ? (ends[p] ?? 0) : null);
      }
    });
    const failed = (await Promise.allSettled(workers)).find((s) => s.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
    return n;
  }

  progress?.start(`rebuilding ${name}`, total);
  try {
    await pass(ends);
  } finally {
    progress?.done();
  }
  // What was appended meanwhile: a few short rounds, then the rest inside the switch.
  for (let round = 0; round < 5; round++) {
    if ((await pass(null)) < 1_000) break;
  }
  stop();

  const old = `${live}_old_${stamp(now())}`;
  let inSwitch = { records: 0, applied: 0 };
  let switchMs = 0;
  for (let attempt = 1; ; attempt++) {
    const s0 = performance.now();
    try {
      inSwitch = await db.tx((q) => switchOver(q, { log, name, live, target, old, lockTimeoutMs, keys: keyStore.through?.(q) ?? keyStore, kind: db.kind, identity: options.identity }));
      switchMs = performance.now() - s0;
      break;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (!code || !RETRYABLE.has(code) || attempt >= 10) throw err;
      say(`the switch gave way to live traffic (${(err as Error).message}); trying again`);
      await sleep(200 * attempt);
    }
  }

  // Tables that held nothing (a restore into a fresh database made them just before) are not
  // kept. Only gemello's own tables moved there; anything else stays in the live schema.
  const [was] = await db.query<{ n: number }>(`SELECT ((SELECT count(*) FROM ${ident(old)}.conversations) + (SELECT count(*) FROM ${ident(old)}.events))::int AS n`);
  const kept = Number(was!.n) > 0 ? old : null;
  if (!kept) await db.exec(`DROP SCHEMA ${ident(old)} CASCADE`);

  const [c] = await db.query<{ conversations: number; messages: number; events: number }>(
    'SELECT (SELECT count(*) FROM conversations)::int AS conversations, (SELECT count(*) FROM messages)::int AS messages, (SELECT count(*) FROM events)::int AS events',
  );
  return {
    projection: name,
    live,
    old: kept,
    resumedFrom,
    records: records + inSwitch.records,
    applied: applied + inSwitch.applied,
    appliedInSwitch: inSwitch.applied,
    seconds: (performance.now() - t0) / 1000,
    switchMs,
    counts: { conversations: Number(c!.conversations), messages: Number(c!.messages), events: Number(c!.events) },
  };
}

/** The switch, inside one transaction; returns the log records read and events applied in it. */
async function switchOver(q: Query, o: { log: EventLog; name: string; live: string; target: string; old: string; lockTimeoutMs: number; keys: KeyStore; kind: Db['kind']; identity?: LogIdentity }): Promise<{ records: number; applied: number }> {
  const { log, name, live, target, old } = o;
  await q.exec(`SET LOCAL lock_timeout = ${Math.round(o.lockTimeoutMs)}`);
  const before = await relations(q, live);
  let liveAt = new Map<number, number>();
  if (before.has('projection_checkpoints')) {
    // The live projector's next batch waits here, on its first statement, until the switch commits.
    await q.exec(`LOCK TABLE ${ident(live)}.projection_checkpoints IN EXCLUSIVE MODE`);
    liveAt = await checkpoints(q, live, name);
  }
  await q.exec(`SET LOCAL search_path TO ${ident(target)}, ${ident(live)}`);
  // The new checkpoints must not be behind the old ones: the live projector would skip the difference.
  const ours = await checkpoints(q, target, name);
  const behind = [...liveAt].filter(([p, next]) => (ours.get(p) ?? 0) < next).map(([p]) => p);
  const batches = await Promise.all(behind.map(async (p) => {
    const batch: LogRecord[] = [];
    await log.read(TOPICS.events, p, ours.get(p) ?? 0, (rs) => void batch.push(...rs));
    return [p, batch] as const;
  }));
  // Keys are read through `q` (the search path finds the live ones): PGlite's one connection is this transaction's.
  const done = { records: 0, applied: 0 };
  for (const [p, batch] of batches) {
    done.records += batch.length;
    done.applied += (await applyBatch(q, name, p, batch, { keys: await keysFor(o.keys, batch) })).applied.length;
  }
  // Other projections keep their checkpoints in the same table, which is about to move.
  if (before.has('projection_checkpoints')) {
    await q.query(
      `INSERT INTO ${ident(target)}.projection_checkpoints (projection, partition, next_offset, updated_at)
       SELECT projection, partition, next_offset, updated_at FROM ${ident(live)}.projection_checkpoints WHERE projection <> $1
       ON CONFLICT DO NOTHING`,
      [name],
    );
  }
  const moving = [...(await relations(q, target))].filter(([rel]) => !KEPT_TABLES.includes(rel));
  await q.exec(`CREATE SCHEMA ${ident(old)}`);
  for (const [rel] of moving) {
    const kind = before.get(rel);
    if (kind) await q.exec(`ALTER ${KIND[kind] ?? 'TABLE'} ${ident(live)}.${ident(rel)} SET SCHEMA ${ident(old)}`);
  }
  for (const [rel, kind] of moving) await q.exec(`ALTER ${KIND[kind] ?? 'TABLE'} ${ident(target)}.${ident(rel)} SET SCHEMA ${ident(live)}`);
  const stale = await dependents(q, old);
  if (stale.length) {
    throw new Error(`not switched: ${stale.join(', ')} would still read the old tables; drop them (or recreate them in a migration) and run replay again, which resumes`);
  }
  // What is left are the empty copies of kept tables. No CASCADE: should a moved view use
  // one of them, the switch fails here and changes nothing.
  try {
    for (const rel of KEPT_TABLES) await q.exec(`DROP TABLE IF EXISTS ${ident(target)}.${ident(rel)}`);
    await q.exec(`DROP SCHEMA ${ident(target)}`);
    // The moved tables were made in the rebuild schema, without the analysts' grants.
    await q.exec(`SET LOCAL search_path TO ${ident(live)}`);
    await grantAnalysts(q, o.kind);
  } catch (err) {
    throw new Error(`not switched: ${(err as Error).message} (a view over projected and kept tables is not supported by replay)`);
  }
  // The old tables may still hold, in the clear, conversations erased since they were made (a
  // restore over a backup older than the erasure, or an erasure the rebuild applied before the
  // live projector did): the erasure reaches them here, as it would have.
  if (before.has('conversations')) {
    const erased = await q.query<{ id: string }>(`SELECT id FROM ${ident(live)}.conversations WHERE erased_at IS NOT NULL`);
    if (erased.length) await eraseFromOldSchemas(q, JSON.stringify(erased.map((r) => r.id)), [old]);
  }
  if (o.identity) await recordReadModelLog(q, o.identity);
  return done;
}
