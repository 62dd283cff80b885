import { decodeEvent, isEventRecord } from '../events/codec.ts';
import { SEALED_HEADER } from '../sealing/keys.ts';
import type { Keyring } from '../sealing/keys.ts';
import type { LoggedEvent } from '../events/schemas.ts';
import { ERASED_TEXT } from '../sealing/seal.ts';
import type { LogRecord } from '../log/port.ts';
import { planBatch } from './plan.ts';
import type { ConversationRow, EventRow, MessageRow, Plan, Prior } from './plan.ts';
import { packRows } from './packed-rows.ts';
import { copyRows } from './copy-rows.ts';
import { copyBinary } from './copy-binary.ts';
import { storableJson } from './storable.ts';
import type { BinaryColumn, BinaryType } from './copy-binary.ts';
import { upcastState } from '../actors/upcast-state.ts';
import type { StoredStateAnyVersion } from '../actors/upcast-state.ts';
import type { Query } from '../stores/sql.ts';

/** What applying one batch did. */
export type BatchResult = {
  /** The partition's checkpoint after the batch. */
  nextOffset: number;
  /** Records at or after the stored checkpoint (the rest were applied before). */
  fresh: number;
  applied: LoggedEvent[];
  duplicates: number;
  notices: number;
  /** Records that could not be applied (undecodable, or a gap in seq), with the reason. */
  rejected: { offset: number; kind: 'undecodable' | 'seq_gap'; reason: string }[];
  /**
   * With `contiguous`: the batch starts after the checkpoint, so offsets [from, to) were
   * never applied here (the consumer group's offsets are ahead of this database: a new or
   * reset database, a restored backup). Nothing was written; read the log from `from`.
   */
  hole: { from: number; to: number } | null;
};

// In partition order, so two writers that hold overlapping partitions (a rebalance, a
// retry beside a redelivery) queue behind each other instead of deadlocking.
const LOCK_CHECKPOINTS = `
INSERT INTO projection_checkpoints (projection, partition, next_offset)
SELECT $1::text, p.value::int, 0 FROM jsonb_array_elements_text($2::text::jsonb) AS p ORDER BY p.value::int
ON CONFLICT (projection, partition) DO UPDATE SET next_offset = projection_checkpoints.next_offset
RETURNING partition, next_offset`;

// A state projected before the counters existed has them counted from its rows, once: the
// upsert of this batch stores them. `ids`: the parameter holding the conversations' ids (JSON);
// `more`: columns after these (the read-ahead's union).
const selectPrior = (ids: string, more = '') => `
SELECT c.id, c.state, c.metadata,
  CASE WHEN c.state->'prompts' IS NULL THEN (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id AND m.role = 'user') END AS prompts,
  CASE WHEN c.state->'replies' IS NULL THEN (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id AND m.role = 'assistant') END AS replies${more}
FROM conversations c
WHERE c.id = ANY (ARRAY(SELECT jsonb_array_elements_text(${ids}::text::jsonb)))`;
const SELECT_PRIOR = selectPrior('$1');

/** How a statement's rows come: one JSON document (jsonb_to_recordset) or packed in one text (packed-rows.ts). */
type RowsIn = 'json' | 'packed';
/** A column type in SQL (a column's type is also how COPY's binary form writes it, copy-binary.ts). */
const SQL_TYPES: Record<BinaryType, string> = { text: 'text', int4: 'int', int8: 'bigint', float8: 'float8', uuid: 'uuid', timestamptz: 'timestamptz', jsonb: 'jsonb' };
const columnNames = (columns: readonly { name: string }[]) => columns.map((c) => c.name).join(', ');
/** The SELECT of a batch's rows from $1, each column cast to its type; `more`: values after them. */
function selectRows(columns: readonly { name: string; type: BinaryType }[], rows: RowsIn, more?: string): string {
  const values = rows === 'json'
    ? columns.map((c) => `x.${c.name}`)
    : columns.map((c, i) => (c.type === 'text' ? `f[${i + 1}]` : `f[${i + 1}]::${SQL_TYPES[c.type]}`));
  if (more) values.push(more);
  const from = rows === 'json'
    ? `jsonb_to_recordset($1::text::jsonb) AS x(${columns.map((c) => `${c.name} ${SQL_TYPES[c.type]}`).join(', ')})`
    : `unnest(string_to_array($1::text, E'\\x1e')) AS r, string_to_array(r, E'\\x1f', E'\\x15') AS f`;
  return `SELECT ${values.join(', ')}\nFROM ${from}`;
}
/** A batch's rows inserted, those already there left as they are. */
const insertRows = (table: string, columns: readonly { name: string; type: BinaryType }[], rows: RowsIn) =>
  `INSERT INTO ${table} (${columnNames(columns)})\n${selectRows(columns, rows)}\nON CONFLICT DO NOTHING`;

// The checkpoints and the prior states in one statement (one snapshot: rows and checkpoints commit
// together, so the states are those of the checkpoints read), before the transaction (readAhead).
const READ_AHEAD = `
SELECT NULL::text AS id, NULL::jsonb AS state, NULL::jsonb AS metadata, NULL::bigint AS prompts, NULL::bigint AS replies, k.partition, k.next_offset
FROM projection_checkpoints k
WHERE k.projection = $1 AND k.partition = ANY (ARRAY(SELECT jsonb_array_elements_text($2::text::jsonb)::int))
UNION ALL${selectPrior('$3', ', NULL::int, NULL::bigint')}`;

const INSERT_CONFIRMED = `
INSERT INTO confirmed_data (conversation_id, seq, key, value, event_id, confirmed_at)
SELECT x.conversation_id, x.seq, x.key, x.value, x.event_id, x.confirmed_at
FROM jsonb_to_recordset($1::text::jsonb) AS x(conversation_id text, seq int, key text, value jsonb, event_id uuid, confirmed_at timestamptz)
ON CONFLICT DO NOTHING`;

const PATCH_MESSAGES = `
UPDATE messages AS m SET metadata = m.metadata || x.patch
FROM jsonb_to_recordset($1::text::jsonb) AS x(conversation_id text, seq int, patch jsonb)
WHERE m.conversation_id = x.conversation_id AND m.seq = x.seq`;

// The conversations' upsert, its rows as JSON or packed in one text parameter
// (projections/packed-rows.ts): packed, the server casts each field, parsing a row's state once,
// where jsonb_to_recordset parsed the whole JSON document first (that parse alone was ≈ 19 µs of
// the ≈ 36 a row took; packed ≈ 25, a bench-shaped conversation of 1.5 KB of state). A batch that
// cannot be packed goes as JSON. The guard on last_seq keeps a row from ever going back, whatever
// the order of writers.
const CONVERSATION_COLUMNS: BinaryColumn<ConversationRow>[] = [
  { name: 'id', type: 'text' }, { name: 'twin_id', type: 'text' }, { name: 'twin_name', type: 'text' }, { name: 'user_id', type: 'text' },
  { name: 'started_at', type: 'timestamptz' }, { name: 'metadata', type: 'jsonb' }, { name: 'state', type: 'jsonb' },
  { name: 'last_seq', type: 'int4' }, { name: 'last_event_id', type: 'uuid' }, { name: 'last_event_at', type: 'timestamptz' },
  { name: 'last_partition', type: 'int4' }, { name: 'last_offset', type: 'int8' },
];
const upsertConversations = (rows: RowsIn) => `
INSERT INTO conversations (${columnNames(CONVERSATION_COLUMNS)}, updated_at)
${selectRows(CONVERSATION_COLUMNS, rows, 'now()')}
ON CONFLICT (id) DO UPDATE SET
  twin_id = excluded.twin_id, twin_name = excluded.twin_name, user_id = excluded.user_id, started_at = excluded.started_at,
  metadata = excluded.metadata, state = excluded.state, last_seq = excluded.last_seq, last_event_id = excluded.last_event_id,
  last_event_at = excluded.last_event_at, last_partition = excluded.last_partition, last_offset = excluded.last_offset, updated_at = now()
WHERE conversations.last_seq < excluded.last_seq`;
const UPSERT_CONVERSATIONS = upsertConversations('json');
const UPSERT_CONVERSATIONS_PACKED = upsertConversations('packed');

// Erasure (ConversationErased), after the batch's own rows: the content rows go, the
// events keep their envelope with the content replaced as a reader without the key sees
// it, speech only this conversation used goes, and the key is destroyed (if its actor host
// has not done so yet). The conversation row stays, its state already stripped by the fold.
const ERASE_MESSAGES = `DELETE FROM messages WHERE conversation_id = ANY (ARRAY(SELECT jsonb_array_elements_text($1::text::jsonb)))`;
const ERASE_CONFIRMED = `DELETE FROM confirmed_data WHERE conversation_id = ANY (ARRAY(SELECT jsonb_array_elements_text($1::text::jsonb)))`;
const ERASE_EVENTS = `
UPDATE events SET data = CASE WHEN type IN ('DataConfirmed', 'DataProposed') THEN data || '{"data":{}}'::jsonb
  WHEN type = 'ValueRead' THEN data || '{"value":{}}'::jsonb WHEN type = 'BackendCalled' THEN data || '{"result":{}}'::jsonb
  ELSE data || jsonb_build_object('text', $2::text) END
WHERE conversation_id = ANY (ARRAY(SELECT jsonb_array_elements_text($1::text::jsonb)))
  AND type IN ('PromptReceived', 'SpeechReceived', 'ReplyGenerated', 'ReplyStopped', 'DataConfirmed', 'DataProposed', 'MessageSaid', 'ValueRead', 'BackendCalled')`;
// A conversation erased earlier keeps its AudioReady events (they hold no content): it uses no audio any more.
const NOT_ERASED = (events: string) => `NOT EXISTS (SELECT 1 FROM conversations c WHERE c.id = ${events}.conversation_id AND c.erased_at IS NOT NULL)`;
const ERASE_AUDIO = `
DELETE FROM audio_cache a
WHERE a.id IN (SELECT e.data->>'audioId' FROM events e WHERE e.type = 'AudioReady' AND e.conversation_id = ANY (ARRAY(SELECT jsonb_array_elements_text($1::text::jsonb))))
  AND NOT EXISTS (SELECT 1 FROM events o WHERE o.type = 'AudioReady' AND o.data->>'audioId' = a.id
                  AND o.conversation_id NOT IN (SELECT jsonb_array_elements_text($1::text::jsonb)) AND ${NOT_ERASED('o')})
  AND NOT EXISTS (SELECT 1 FROM audio_uses u WHERE u.audio_id = a.id AND u.conversation_id NOT IN (SELECT jsonb_array_elements_text($1::text::jsonb)))`;
// The clips spoken to the erased conversations (a reply's sentences) that no other conversation used.
const ERASE_SPOKEN = `
DELETE FROM audio_cache a
WHERE a.id IN (SELECT u.audio_id FROM audio_uses u WHERE u.conversation_id = ANY (ARRAY(SELECT jsonb_array_elements_text($1::text::jsonb))))
  AND NOT EXISTS (SELECT 1 FROM audio_uses o WHERE o.audio_id = a.id AND o.conversation_id NOT IN (SELECT jsonb_array_elements_text($1::text::jsonb)))
  AND NOT EXISTS (SELECT 1 FROM events o WHERE o.type = 'AudioReady' AND o.data->>'audioId' = a.id
                  AND o.conversation_id NOT IN (SELECT jsonb_array_elements_text($1::text::jsonb)) AND ${NOT_ERASED('o')})`;
const ERASE_USES = `DELETE FROM audio_uses WHERE conversation_id = ANY (ARRAY(SELECT jsonb_array_elements_text($1::text::jsonb)))`;
// The caller's kept utterances (GEMELLO_KEEP_VOICE): sealed with the key destroyed here, and deleted too.
const ERASE_VOICE = `DELETE FROM voice_clips WHERE conversation_id = ANY (ARRAY(SELECT jsonb_array_elements_text($1::text::jsonb)))`;
const ERASE_VOICE_SEGMENTS = `DELETE FROM voice_segments WHERE conversation_id = ANY (ARRAY(SELECT jsonb_array_elements_text($1::text::jsonb)))`;
const ERASE_KEYS = `
INSERT INTO conversation_keys (conversation_id, destroyed_at) SELECT x, now() FROM jsonb_array_elements_text($1::text::jsonb) AS x
ON CONFLICT (conversation_id) DO UPDATE SET key = NULL, wrapped = NULL, destroyed_at = now() WHERE conversation_keys.destroyed_at IS NULL`;
const MARK_ERASED = `
UPDATE conversations AS c SET erased_at = x.erased_at
FROM jsonb_to_recordset($1::text::jsonb) AS x(conversation_id text, erased_at timestamptz)
WHERE c.id = x.conversation_id`;

/** What an erasure removes from the tables that are not projections of the events (speech, kept voice), in this order. */
const KEPT_COPIES = [ERASE_AUDIO, ERASE_SPOKEN, ERASE_USES, ERASE_VOICE, ERASE_VOICE_SEGMENTS];

/**
 * Removes the erased conversations' speech and kept voice from the tables a rebuild keeps
 * (`restore` after a database backup older than the erasures brought their rows back).
 * Needs the rebuilt events (their AudioReady). Returns the rows removed.
 */
export async function eraseKeptCopies(q: Query, conversationIds: string[]): Promise<number> {
  let removed = 0;
  const ids = JSON.stringify(conversationIds);
  for (const statement of KEPT_COPIES) removed += (await q.query<{ n: number }>(`WITH gone AS (${statement} RETURNING 1) SELECT count(*)::int AS n FROM gone`, [ids]))[0]?.n ?? 0;
  return removed;
}

// For this transaction only: COMMIT returns once the WAL is written, before it is flushed.
const LAZY_COMMIT = `SET LOCAL synchronous_commit = off`;

const SAVE_CHECKPOINTS = `
UPDATE projection_checkpoints AS c SET next_offset = x.next_offset, updated_at = now()
FROM jsonb_to_recordset($2::text::jsonb) AS x(partition int, next_offset bigint)
WHERE c.projection = $1 AND c.partition = x.partition`;

// The events' and messages' rows, each table's columns declared once: its statements below are
// made from them. Packed in one text parameter (projections/packed-rows.ts) a batch is about a
// third less of the server's work than as a JSON document; JSON takes a batch that cannot be packed.
const EVENT_COLUMNS: BinaryColumn<EventRow>[] = [
  { name: 'event_id', type: 'uuid' }, { name: 'conversation_id', type: 'text' }, { name: 'seq', type: 'int4' }, { name: 'type', type: 'text' },
  { name: 'schema_version', type: 'int4' }, { name: 'occurred_at', type: 'timestamptz' }, { name: 'causation_id', type: 'text' },
  { name: 'correlation_id', type: 'text' }, { name: 'traceparent', type: 'text' }, { name: 'data', type: 'jsonb' },
  { name: 'partition', type: 'int4' }, { name: 'log_offset', type: 'int8' },
];
const MESSAGE_COLUMNS: BinaryColumn<MessageRow>[] = [
  { name: 'conversation_id', type: 'text' }, { name: 'seq', type: 'int4' }, { name: 'role', type: 'text' }, { name: 'content', type: 'text' },
  { name: 'reply_to_seq', type: 'int4' }, { name: 'tokens_used', type: 'int4' }, { name: 'prompt_tokens', type: 'int4' },
  { name: 'completion_tokens', type: 'int4' }, { name: 'model', type: 'text' }, { name: 'model_latency_ms', type: 'float8' },
  { name: 'request_id', type: 'text' }, { name: 'event_id', type: 'uuid' }, { name: 'created_at', type: 'timestamptz' },
];

// Many rows of a table go by COPY where the database has it (Query.copyIn, PostgreSQL): about
// half the server's work of the packed INSERT (bench projector), in COPY's binary format (the
// server reads uuids, integers and timestamps as bytes, not text: ≈ 13–15 % less of its work a
// row, bench projector-sql), or as text for rows the binary form does not take (copy-binary.ts).
// COPY has no ON CONFLICT: a row already there (two projections writing the same tables, a log
// whose event ids repeat) fails the transaction, and the projector tries the batch again without COPY.
const copyInto = (table: string, columns: readonly { name: string }[], binary: boolean) =>
  `COPY ${table} (${columnNames(columns)}) FROM STDIN${binary ? ' (FORMAT binary)' : ''}`;

/** A table's four ways in (see write): its columns, its COPY in binary and in text, its packed INSERT, its JSON one. */
type RowTable<R> = { columns: BinaryColumn<R>[]; copyBinary: string; copy: string; packed: string; json: string };
const rowTable = <R>(table: string, columns: BinaryColumn<R>[]): RowTable<R> => ({
  columns,
  copyBinary: copyInto(table, columns, true),
  copy: copyInto(table, columns, false),
  packed: insertRows(table, columns, 'packed'),
  json: insertRows(table, columns, 'json'),
});
const EVENTS = rowTable('events', EVENT_COLUMNS);
const MESSAGES = rowTable('messages', MESSAGE_COLUMNS);

type Statement = [text: string, params: unknown[]];

/**
 * Writes a plan's rows and the checkpoints; statements with nothing to write are not sent.
 * The COPYs (`copyRows`: a table with at least that many rows, where the database has COPY)
 * go first, one after the other (nothing else may be sent during one); the statements then go
 * out together (pipelined on Postgres, queued in order on PGlite) and run in the order given,
 * so the round trips do not add up; all have finished before this returns, so a failure rolls
 * back a transaction with nothing of it still on the wire.
 */
async function write(q: Query, plan: Plan, projection: string, checkpoints: { partition: number; next_offset: number }[], copyRowsFrom: number): Promise<void> {
  const statements: Statement[] = [];
  const copies: [string, Uint8Array][] = [];
  /** A table's rows: by COPY when there are enough of them, else packed, else as JSON (a row that cannot be packed). */
  const rowsOf = <R extends Record<string, unknown>>(table: RowTable<R>, rows: R[]) => {
    if (!rows.length) return;
    if (q.copyIn !== undefined && copyRowsFrom > 0 && rows.length >= copyRowsFrom) {
      const binary = copyBinary(rows, table.columns);
      copies.push(binary === null ? [table.copy, copyRows(rows, table.columns)] : [table.copyBinary, binary]);
    } else {
      const packed = packRows(rows, table.columns);
      statements.push(packed === null ? [table.json, [storableJson(rows)]] : [table.packed, [packed]]);
    }
  };
  rowsOf(EVENTS, plan.events);
  rowsOf(MESSAGES, plan.messages);
  // After the messages: a reply and its audio can arrive in the same batch.
  if (plan.patches.length) statements.push([PATCH_MESSAGES, [storableJson(plan.patches)]]);
  if (plan.confirmed.length) statements.push([INSERT_CONFIRMED, [storableJson(plan.confirmed)]]);
  if (plan.conversations.length) {
    const packed = packRows(plan.conversations, CONVERSATION_COLUMNS);
    statements.push(packed === null ? [UPSERT_CONVERSATIONS, [storableJson(plan.conversations)]] : [UPSERT_CONVERSATIONS_PACKED, [packed]]);
  }
  const erasedIds = plan.erased.length ? JSON.stringify(plan.erased.map((x) => x.conversation_id)) : null;
  if (erasedIds) {
    const ids = erasedIds;
    statements.push([ERASE_MESSAGES, [ids]], [ERASE_CONFIRMED, [ids]], ...KEPT_COPIES.map((x): [string, unknown[]] => [x, [ids]]), [ERASE_EVENTS, [ids, ERASED_TEXT]], [ERASE_KEYS, [ids]], [MARK_ERASED, [storableJson(plan.erased)]]);
  }
  if (checkpoints.length) statements.push([SAVE_CHECKPOINTS, [projection, JSON.stringify(checkpoints)]]);
  for (const [statement, data] of copies) await q.copyIn!(statement, data);
  const settled = await Promise.allSettled(statements.map(([text, params]) => q.query(text, params)));
  const failed = settled.find((x) => x.status === 'rejected');
  if (failed) throw failed.reason;
  if (erasedIds) await eraseFromOldSchemas(q, erasedIds);
}

/**
 * The tables a rebuild set aside (`<schema>_old_<UTC time>`, kept for a rollback by hand) hold the
 * erased conversations' content in the clear: their rows go from there too, in the erasure's
 * transaction. A rollback to such a schema then lacks the conversations erased since the rebuild.
 */
export async function eraseFromOldSchemas(q: Query, ids: string, only?: string[]): Promise<void> {
  // Only the tables there (an operator may have dropped some): a missing one must not fail the erasure's batch.
  // `<schema>_old_<YYYYMMDD_HHMMSS>` exactly (schema names are [a-z0-9_]): another deployment's may start with `<schema>_old_` too.
  // The conversations' rows last: the others may refer to them.
  const tables = await q.query<{ schema: string; table: string }>(`
    SELECT n.nspname AS schema, c.relname AS table FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname ~ ('^' || current_schema() || '_old_[0-9]{8}_[0-9]{6}$') AND c.relkind IN ('r', 'p')
      AND c.relname IN ('messages', 'confirmed_data', 'events', 'conversations')
    ORDER BY c.relname = 'conversations'`);
  for (const { schema, table } of tables) {
    if (!/^[a-z0-9_]+$/.test(schema) || (only && !only.includes(schema))) continue;
    const column = table === 'conversations' ? 'id' : 'conversation_id';
    await q.query(`DELETE FROM "${schema}"."${table}" WHERE ${column} = ANY (ARRAY(SELECT jsonb_array_elements_text($1::text::jsonb)))`, [ids]);
  }
}

type PriorRow = { id: string; state: StoredStateAnyVersion; metadata: Record<string, unknown>; prompts: number | null; replies: number | null };
/** A record decoded: its event, or why it is not one (a notice decodes to nothing). */
type Decoded = LoggedEvent | Error;

/** Every record of the batches decoded (keys: see keysFor), by batch and position; a notice is undefined. */
function decodeAll(batches: PartitionBatch[], keys: Keyring | undefined): (Decoded | undefined)[][] {
  return batches.map((b) => b.records.map((r) => {
    if (!isEventRecord(r)) return undefined;
    try {
      return decodeEvent(r, keys);
    } catch (err) {
      return err as Error;
    }
  }));
}

/** The conversations the batches' records name (a superset of those that will be applied). */
function conversationsOf(batches: PartitionBatch[]): Set<string> {
  const ids = new Set<string>();
  for (const b of batches) for (const r of b.records) if (isEventRecord(r)) ids.add(r.key);
  return ids;
}

/** What readAhead read: each partition's checkpoint (absent: none yet) and the prior states, as of one commit. */
export type ReadAhead = { checkpoints: Map<number, number>; prior: PriorRow[] };

/** The checkpoints read ahead are not those the transaction locked (another writer committed meanwhile): nothing of it may commit; apply again without reading ahead. */
export class StaleReadAhead extends Error {
  readonly code = 'stale_read_ahead';
}

/**
 * The batches' checkpoints and prior states, read in one statement outside their transaction (on
 * another connection, while its BEGIN is on its way), so the transaction need not wait for them
 * after its BEGIN: a round trip less (see applyBatches' `ahead`).
 */
export async function readAhead(q: Query, projection: string, batches: PartitionBatch[]): Promise<ReadAhead> {
  const rows = await q.query<PriorRow & { partition: number | null; next_offset: number | null }>(READ_AHEAD, [
    projection,
    JSON.stringify(batches.map((b) => b.partition)),
    JSON.stringify([...conversationsOf(batches)]),
  ]);
  const checkpoints = new Map<number, number>();
  const prior: PriorRow[] = [];
  for (const r of rows) {
    if (r.id === null) checkpoints.set(Number(r.partition), Number(r.next_offset));
    else prior.push(r);
  }
  return { checkpoints, prior };
}

/** One partition's records, in offset order, as the log delivered them. */
export type PartitionBatch = {
  partition: number;
  records: LogRecord[];
  /** Report a hole instead of applying when the records start after the stored checkpoint (see BatchResult.hole). */
  contiguous?: boolean;
};

/**
 * Applies batches of several partitions (one batch each) inside the caller's transaction:
 * every partition's rows and every checkpoint commit together, so a crash neither skips an
 * event nor applies one twice. Records before a partition's stored checkpoint were applied
 * already and are passed over; the checkpoint rows are locked first, so two deliveries of
 * the same batch (a rebalance, a retry) wait for each other instead of interleaving.
 * Returns one result per batch, in the order given.
 */
export async function applyBatches(
  q: Query,
  projection: string,
  batches: PartitionBatch[],
  /**
   * keys: the data keys of the batches' conversations (see keysFor); read here, in one query, when not given.
   * lazyCommit: the transaction's COMMIT does not wait for the WAL to reach the disk (see ProjectorOptions.lazyCommit).
   * copyRows: a table's rows go by COPY when there are at least this many and the database has it (see ProjectorOptions.copyRows; default 0, never).
   * ahead: the checkpoints and prior states read before the transaction (readAhead). The lock goes
   * out with the rows instead of before them, and what it finds is checked before this returns:
   * checkpoints other than those read throw StaleReadAhead (the caller rolls back and applies
   * again without). No COPY then: nothing may be sent during one, and the lock would be.
   */
  options: { keys?: Keyring; lazyCommit?: boolean; copyRows?: number; ahead?: ReadAhead } = {},
): Promise<BatchResult[]> {
  const partitions = batches.map((b) => b.partition);
  if (new Set(partitions).size !== partitions.length) throw new Error(`one batch per partition in a transaction (got partitions ${partitions.join(', ')})`);
  if (!batches.length) return [];
  // The checkpoints' lock and the prior states go out together: on one connection the
  // SELECT runs after the lock is granted, so it sees what the last holder committed. Its
  // conversations are the records' keys (a superset of what will be applied); the records
  // are decoded meanwhile, before it is known which of them are fresh.
  const ids = conversationsOf(batches);
  const { ahead } = options;
  const lazyP = options.lazyCommit ? q.query(LAZY_COMMIT) : Promise.resolve([]);
  const lockedP = q.query<{ partition: number; next_offset: number }>(LOCK_CHECKPOINTS, [projection, JSON.stringify(partitions)]);
  const priorP = ahead ? Promise.resolve(ahead.prior) : ids.size ? q.query<PriorRow>(SELECT_PRIOR, [JSON.stringify([...ids])]) : Promise.resolve([]);
  const decoded = decodeAll(batches, options.keys);
  // All are awaited, so none rejects unobserved while another is.
  const settled = Promise.allSettled([lazyP, lockedP, priorP]);
  const locked = async () => {
    const [lazyR, lockedR, priorR] = await settled;
    if (lazyR.status === 'rejected') throw lazyR.reason;
    if (lockedR.status === 'rejected') throw lockedR.reason;
    if (priorR.status === 'rejected') throw priorR.reason;
    return { stored: new Map(lockedR.value.map((r) => [Number(r.partition), Number(r.next_offset)])), priorRows: priorR.value };
  };
  /** With `ahead`: the lock's checkpoints are those read ahead (else nothing of this may commit). */
  const checked = async () => {
    if (!ahead) return;
    const { stored: found } = await locked();
    for (const p of partitions) {
      if (found.get(p) !== (ahead.checkpoints.get(p) ?? 0)) throw new StaleReadAhead(`partition ${p}: checkpoint ${found.get(p)} under the lock, ${ahead.checkpoints.get(p) ?? 0} read ahead`);
    }
  };
  const { stored, priorRows: priorFound } = ahead ? { stored: new Map(partitions.map((p) => [p, ahead.checkpoints.get(p) ?? 0])), priorRows: ahead.prior } : await locked();

  const results: BatchResult[] = [];
  const todo: { partition: number; result: BatchResult; fresh: LogRecord[]; decoded: (Decoded | undefined)[] }[] = [];
  for (const [i, b] of batches.entries()) {
    const from = stored.get(b.partition)!;
    // In offset order: what is fresh is what follows the last record before the checkpoint.
    let start = b.records.length;
    while (start > 0 && b.records[start - 1]!.offset >= from) start--;
    const fresh = start ? b.records.slice(start) : b.records;
    const result: BatchResult = { nextOffset: from, fresh: fresh.length, applied: [], duplicates: 0, notices: 0, rejected: [], hole: null };
    results.push(result);
    if (!fresh.length) continue;
    // The batch starts after the checkpoint: what lies between is not in this batch (see BatchResult.hole).
    if (b.contiguous && fresh[0]!.offset > from) {
      result.hole = { from, to: fresh[0]!.offset };
      continue;
    }
    todo.push({ partition: b.partition, result, fresh, decoded: start ? decoded[i]!.slice(start) : decoded[i]! });
  }
  if (!todo.length) {
    await checked();
    return results;
  }

  const events: LoggedEvent[] = [];
  /** The batch each event came from (source[i] for events[i]), to report what became of it there. */
  const source: BatchResult[] = [];
  for (const { result, fresh, decoded: ds } of todo) {
    for (let i = 0; i < fresh.length; i++) {
      const d = ds[i];
      if (d === undefined) result.notices++;
      else if (d instanceof Error) result.rejected.push({ offset: fresh[i]!.offset, kind: 'undecodable', reason: d.message });
      else {
        events.push(d);
        source.push(result);
      }
    }
  }

  // A record keyed otherwise than its conversation (not what gemello writes): its prior state too.
  const missing = [...new Set(events.map((e) => e.conversationId).filter((id) => !ids.has(id)))];
  const priorRows = missing.length ? priorFound.concat(await q.query<PriorRow>(SELECT_PRIOR, [JSON.stringify(missing)])) : priorFound;
  const prior = new Map<string, Prior>();
  for (const row of priorRows) {
    const counts = row.prompts === null || row.replies === null ? undefined : { prompts: Number(row.prompts), replies: Number(row.replies) };
    const { messages: _none, ...state } = upcastState(row.state, 0, counts);
    prior.set(row.id, { state, metadata: row.metadata });
  }
  // One fold over every partition's events: a conversation lives in one partition, and
  // should one ever turn up in two, its events still fold one after the other.
  const plan = planBatch(prior, events);
  for (const t of todo) t.result.nextOffset = t.fresh[t.fresh.length - 1]!.offset + 1;
  try {
    await write(q, plan, projection, todo.map((t) => ({ partition: t.partition, next_offset: t.result.nextOffset })), ahead ? 0 : (options.copyRows ?? 0));
  } catch (err) {
    // A row another writer put there meanwhile fails a statement: say so, not the statement's error.
    await checked();
    throw err;
  }
  await checked();

  // Each list of the plan is in the order of `events`: walked beside it, each event finds its batch.
  const sourceOf = () => {
    let j = 0;
    return (e: LoggedEvent): BatchResult => {
      while (events[j] !== e) j++;
      return source[j++]!;
    };
  };
  const appliedIn = sourceOf();
  for (const e of plan.applied) appliedIn(e).applied.push(e);
  const gapIn = sourceOf();
  for (const g of plan.gaps) gapIn(g.event).rejected.push({ offset: g.event.position.offset, kind: 'seq_gap', reason: g.reason });
  const duplicateIn = sourceOf();
  for (const e of plan.duplicates) duplicateIn(e).duplicates++;
  return results;
}

/** Applies one batch of one partition inside the caller's transaction (see applyBatches). */
export async function applyBatch(
  q: Query,
  projection: string,
  partition: number,
  records: LogRecord[],
  /** keys: the data keys of the batch's conversations (see keysFor); read here, in one query, when not given. copyRows: see applyBatches. */
  options: { contiguous?: boolean; keys?: Keyring; copyRows?: number } = {},
): Promise<BatchResult> {
  const [result] = await applyBatches(q, projection, [{ partition, records, contiguous: options.contiguous }], { keys: options.keys, copyRows: options.copyRows });
  return result!;
}
