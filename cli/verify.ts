import type { SnapshotStore, StateSource } from '../actors/ports.ts';
import { fold } from '../actors/state.ts';
import type { ConversationState } from '../actors/state.ts';
import { decodeEvents } from '../events/codec.ts';
import type { KeyStore } from '../sealing/keys.ts';
import type { LoggedEvent } from '../events/schemas.ts';
import type { EventLog } from '../log/port.ts';
import { TOPICS } from '../log/port.ts';
import type { Db } from '../stores/sql.ts';
import type { Progress } from './progress.ts';
import { plural } from './wording.ts';

export type Mismatch = { conversationId: string; where: 'snapshot' | 'read model' | 'messages' | 'log'; detail: string };

/** JSON with keys sorted, so states from JSONB (which reorders keys) compare equal. */
export function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

function firstDifference(a: ConversationState, b: ConversationState): string {
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const x = (a as Record<string, unknown>)[k];
    const y = (b as Record<string, unknown>)[k];
    if (canonical(x) !== canonical(y)) return `${k}${differenceIn(x, y)}`;
  }
  return 'differs';
}

/** Where two values first differ: the first element of two lists that differs, else an excerpt from the first character that does. */
export function differenceIn(x: unknown, y: unknown): string {
  if (Array.isArray(x) && Array.isArray(y)) {
    const i = Array.from({ length: Math.max(x.length, y.length) }, (_, k) => k).find((k) => canonical(x[k]) !== canonical(y[k]))!;
    if (i >= x.length || i >= y.length) return `: log has ${x.length} items, copy has ${y.length}`;
    return `[${i}]${differenceIn(x[i], y[i])}`;
  }
  const a = canonical(x);
  const b = canonical(y);
  let i = 0;
  while (i < a.length && a[i] === b[i]) i++;
  const from = Math.max(0, i - 20);
  const cut = (t: string) => `${from > 0 ? '…' : ''}${t.slice(from, from + 80)}${t.length > from + 80 ? '…' : ''}`;
  return `: log has ${cut(a)}, copy has ${cut(b)}`;
}

/** The log's fold (with the whole transcript) as a copy that keeps its last `copy.messages.length` messages must look. */
function recent(whole: ConversationState, copy: ConversationState): ConversationState {
  const n = Math.min(whole.messages.length, copy.messages?.length ?? 0);
  return { ...whole, messages: whole.messages.slice(whole.messages.length - n) };
}

/** Each partition's events grouped by conversation, one partition at a time. */
export async function forEachConversation(log: EventLog, progress: Progress | undefined, visit: (conversationId: string, events: LoggedEvent[]) => Promise<void>, keys?: KeyStore | null): Promise<void> {
  const ends = await log.endOffsets(TOPICS.events);
  progress?.start('reading the log', ends.reduce((a, b) => a + b, 0));
  for (let p = 0; p < ends.length; p++) {
    const byConversation = new Map<string, LoggedEvent[]>();
    await log.read(TOPICS.events, p, 0, async (records) => {
      for (const e of await decodeEvents(records, keys)) {
        let list = byConversation.get(e.conversationId);
        if (!list) byConversation.set(e.conversationId, (list = []));
        list.push(e);
      }
      progress?.advance(records.length);
    });
    for (const [id, events] of byConversation) await visit(id, events);
  }
  progress?.done();
}

/**
 * Compares every copy with the log: fold(log) at the snapshot's seq against the Redis
 * snapshot, and at the projected seq against the read model's state and message rows.
 */
export async function verify(deps: { log: EventLog; snapshots: SnapshotStore; readModel: StateSource; db: Db; progress?: Progress; keys?: KeyStore | null }): Promise<{ conversations: number; mismatches: Mismatch[]; behind: number }> {
  const mismatches: Mismatch[] = [];
  let conversations = 0;
  let behind = 0;
  // Where the read model says it has projected each partition to: an event before that it does not hold was skipped, not yet to come.
  const rows = await deps.db.query<{ partition: number; next_offset: number }>('SELECT partition, next_offset FROM projection_checkpoints WHERE projection = $1', ['readmodel']).catch(() => []);
  const checkpoint = new Map(rows.map((r) => [Number(r.partition), Number(r.next_offset)]));
  const skipped = (events: LoggedEvent[], projectedSeq: number): LoggedEvent | null => {
    const missing = events.find((e) => e.seq === projectedSeq + 1);
    return missing && missing.position.offset < (checkpoint.get(missing.position.partition) ?? 0) ? missing : null;
  };
  const passed = (e: LoggedEvent) => `the read model's checkpoint of partition ${e.position.partition} is past seq ${e.seq} (offset ${e.position.offset}), which it does not hold: run \`gemello replay --projection readmodel\``;
  await forEachConversation(deps.log, deps.progress, async (id, events) => {
    conversations++;
    let full: ConversationState;
    try {
      full = fold(id, events, undefined, Infinity);
    } catch (err) {
      mismatches.push({ conversationId: id, where: 'log', detail: (err as Error).message });
      return;
    }
    // The fold with the whole transcript, of which a copy holds the last messages.
    const at = (seq: number) => fold(id, events.filter((e) => e.seq <= seq), undefined, Infinity);
    try {
      const snap = await deps.snapshots.get(id);
      if (snap) {
        if (full.erased) mismatches.push({ conversationId: id, where: 'snapshot', detail: `the conversation was erased at seq ${full.erased.seq} but a snapshot remains` });
        else if (snap.seq > full.seq) mismatches.push({ conversationId: id, where: 'snapshot', detail: `at seq ${snap.seq}, but the log ends at ${full.seq}` });
        else {
          const expected = recent(at(snap.seq), snap.state);
          if (canonical(expected) !== canonical(snap.state)) mismatches.push({ conversationId: id, where: 'snapshot', detail: `at seq ${snap.seq}: ${firstDifference(expected, snap.state)}` });
        }
      }
    } catch (err) {
      mismatches.push({ conversationId: id, where: 'snapshot', detail: (err as Error).message });
    }
    const projected = await deps.readModel.stateOf(id);
    if (!projected) {
      const missing = skipped(events, 0);
      if (missing) mismatches.push({ conversationId: id, where: 'read model', detail: `not there at all: ${passed(missing)}` });
      else behind++;
      return;
    }
    if (projected.seq > full.seq) mismatches.push({ conversationId: id, where: 'read model', detail: `at seq ${projected.seq}, but the log ends at ${full.seq}` });
    else {
      const missing = projected.seq < full.seq ? skipped(events, projected.seq) : null;
      if (missing) mismatches.push({ conversationId: id, where: 'read model', detail: `at seq ${projected.seq}: ${passed(missing)}` });
      else if (projected.seq < full.seq) behind++;
      const whole = at(projected.seq);
      const expected = recent(whole, projected.state);
      if (canonical(expected) !== canonical(projected.state)) mismatches.push({ conversationId: id, where: 'read model', detail: `state at seq ${projected.seq}: ${firstDifference(expected, projected.state)}` });
      const rows = await deps.db.query<{ seq: number; role: string; content: string }>('SELECT seq, role, content FROM messages WHERE conversation_id = $1 AND seq <= $2 ORDER BY seq', [id, projected.seq]);
      const want = whole.messages.map((m) => `${m.seq}:${m.role}:${m.content}`);
      const have = rows.map((r) => `${r.seq}:${r.role}:${r.content}`);
      if (want.join('\n') !== have.join('\n')) {
        const i = want.findIndex((w, k) => w !== have[k]);
        mismatches.push({ conversationId: id, where: 'messages', detail: `row ${i < 0 ? have.length : i}: log has ${JSON.stringify(want[i < 0 ? have.length : i] ?? null)?.slice(0, 80)}, table has ${JSON.stringify(have[i < 0 ? want.length : i] ?? null)?.slice(0, 80)}` });
      }
    }
  }, deps.keys);
  return { conversations, mismatches, behind };
}

/** The last line of `gemello verify`. */
export function verifySummary(r: { conversations: number; mismatches: unknown[]; behind: number }): string {
  const line = `${plural(r.conversations, 'conversation')} checked: ${plural(r.mismatches.length, 'mismatch', 'mismatches')}${r.behind ? `, ${r.behind} not yet fully projected` : ''}`;
  // Not wrong, only behind: the projector catches up while it runs; a read model that was lost is rebuilt at once.
  return r.behind ? `${line} (the projector projects them while it runs; \`gemello doctor\` says how far behind the log the read model is, \`gemello restore\` rebuilds a read model that was lost)` : line;
}
