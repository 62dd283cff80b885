import { EventData, RawEnvelope, SCHEMA_VERSION } from './schemas.ts';
import type { DomainEvent, EventEnvelope, EventType, LogPosition, LoggedEvent } from './schemas.ts';
import { keysFor, SEALED_HEADER } from '../sealing/keys.ts';
import type { Keyring, KeyStore } from '../sealing/keys.ts';
import { isSealed, open, seal } from '../sealing/seal.ts';
import type { Sealed } from '../sealing/seal.ts';
import { marker, PERSONAL, sealContext } from '../sealing/personal.ts';
import { upcast } from './upcast.ts';
import { fastSafeParse } from './fast-parse.ts';
import type { LogRecord, OutgoingRecord } from '../log/port.ts';

/** Kafka record for an event: key = conversationId, JSON value, type/version/traceparent headers; content in the clear. */
export function encodeEvent(event: EventEnvelope): OutgoingRecord {
  return encodeSealedEvent(event, null);
}

/**
 * Like encodeEvent, but with the conversation's data key its personal field is sealed
 * (and the record says so in its `sealed` header). Without a key it is written in the clear.
 */
export function encodeSealedEvent(event: EventEnvelope, key: Uint8Array | null | undefined): OutgoingRecord {
  const headers: Record<string, string> = {
    'event-type': event.type,
    'schema-version': String(event.schemaVersion),
  };
  if (event.traceparent) headers.traceparent = event.traceparent;
  const p = PERSONAL[event.type];
  if (!key || !p) return { key: event.conversationId, value: JSON.stringify(event), headers };
  const content = (event.data as Record<string, unknown>)[p.field];
  const sealed = seal(key, p.json ? JSON.stringify(content) : String(content), sealContext(event.conversationId, event.eventId, p.field));
  headers[SEALED_HEADER] = '1';
  return { key: event.conversationId, value: JSON.stringify({ ...event, data: { ...event.data, [p.field]: sealed } }), headers };
}

// The envelope's and each type's data schema, parsed as zod does (the same values, the same
// errors) with the inputs they accept checked by compiled code (events/fast-parse.ts).
const parseEnvelope = fastSafeParse(RawEnvelope);
const parseData = Object.fromEntries(Object.entries(EventData).map(([type, schema]) => [type, fastSafeParse(schema)])) as Record<EventType, ReturnType<typeof fastSafeParse>>;

/** Thrown when a record on the events topic is not a valid event. */
export class UndecodableEvent extends Error {
  readonly code = 'undecodable_event';
}

/**
 * A reader that opens some content later (replay opens only what its states still hold, see
 * actors/replay-fold.ts): the sealed text of the types in `types` whose key is in the ring is
 * not opened; the event holds `placeholder` instead and `taken` what opens it, until the
 * reader takes it (null when the event's content was not left sealed). Text fields only: a
 * fold inspects no text of these types, it copies it.
 */
export type Later = { types: ReadonlySet<EventType>; placeholder: string; taken: Deferred | null };
/** Content a decode left sealed: what `openDeferred` opens. */
export type Deferred = { sealed: Sealed; key: Uint8Array; context: string };

/** The text of content a decode left sealed, or the erased marker when it does not open (what the decode would have given). */
export const openDeferred = (d: Deferred): string => open(d.key, d.sealed, d.context) ?? (marker(false) as string);

/**
 * The personal field opened with the conversation's key, or the erased marker when the key is
 * gone, or when the reader said it does not read that type's content (`unopened`), or left
 * sealed for `later`. `data` is this decode's own (parsed just now, or an upcaster's), so it is
 * changed in place, not copied.
 */
function unseal(env: RawEnvelope, data: unknown, keys: Keyring | undefined, unopened: ReadonlySet<EventType> | undefined, later: Later | undefined): unknown {
  const p = PERSONAL[env.type];
  const d = data as Record<string, unknown> | null;
  if (!p || typeof d !== 'object' || d === null || !isSealed(d[p.field])) return data;
  if (unopened?.has(env.type)) {
    d[p.field] = marker(p.json);
    return d;
  }
  const key = keys?.get(env.conversationId);
  const context = sealContext(env.conversationId, env.eventId, p.field);
  if (key && !p.json && later?.types.has(env.type)) {
    later.taken = { sealed: d[p.field] as Sealed, key, context };
    d[p.field] = later.placeholder;
    return d;
  }
  const text = key ? open(key, d[p.field] as never, context) : null;
  if (text === null) d[p.field] = marker(p.json);
  else if (!p.json) d[p.field] = text;
  else {
    try {
      d[p.field] = JSON.parse(text);
    } catch {
      d[p.field] = marker(true);
    }
  }
  return d;
}

/**
 * Parses, validates and upcasts one stored event, opening sealed content with `keys`
 * (loaded for the batch beforehand, see keysFor). A conversation whose key is not in
 * `keys` decodes with its content replaced by the marker: erasure never blocks a reader.
 * The sealed content of the types in `unopened` is not opened (it reads as the marker): for a
 * reader that never uses it, an AES-GCM open less per event. With `later`, see Later.
 */
export function decodeEventValue(value: string, keys?: Keyring, unopened?: ReadonlySet<EventType>, later?: Later): EventEnvelope {
  if (later) later.taken = null;
  return decodeValue(value, keys, unopened, undefined, later);
}

/** The event in `value`, with its position when one is given (made in one object: no copy of the envelope per event). */
function decodeValue(value: string, keys: Keyring | undefined, unopened: ReadonlySet<EventType> | undefined, position: LogPosition | undefined, later: Later | undefined): LoggedEvent {
  let json: unknown;
  try {
    json = JSON.parse(value);
  } catch {
    throw new UndecodableEvent('event record is not JSON');
  }
  const raw = parseEnvelope(json);
  if (!raw.success) throw new UndecodableEvent(`bad event envelope: ${raw.error.issues[0]?.message}`);
  const env = raw.data;
  const current = SCHEMA_VERSION[env.type];
  if (env.schemaVersion > current) {
    throw new UndecodableEvent(`${env.type} v${env.schemaVersion} is newer than this build (v${current})`);
  }
  const parsed = parseData[env.type](unseal(env, upcast(env.type, env.schemaVersion, current, env.data), keys, unopened, later));
  if (!parsed.success) {
    throw new UndecodableEvent(`bad ${env.type} data: ${parsed.error.issues[0]?.path.join('.')} ${parsed.error.issues[0]?.message}`);
  }
  // zod's output is a new object of this decode's own: it becomes the event.
  env.schemaVersion = current;
  env.data = parsed.data;
  if (position) (env as RawEnvelope & { position?: LogPosition }).position = position;
  return env as unknown as LoggedEvent;
}

/** The event in `record`, with its position; with `later`, see Later. */
export function decodeEvent(record: LogRecord, keys?: Keyring, unopened?: ReadonlySet<EventType>, later?: Later): LoggedEvent {
  if (later) later.taken = null;
  return decodeValue(record.value, keys, unopened, { partition: record.partition, offset: record.offset }, later);
}

/**
 * The events among `records` (notices are skipped), decoded with the keys they need,
 * loaded from `store` in one call. Without a store, sealed content reads as erased.
 */
export async function decodeEvents(records: readonly LogRecord[], store: KeyStore | null | undefined): Promise<LoggedEvent[]> {
  const events = records.filter(isEventRecord);
  const ring = await keysFor(store, events);
  return events.map((r) => decodeEvent(r, ring));
}

/** Wraps domain events in envelopes with consecutive seqs after `lastSeq`. */
export function envelope(
  conversationId: string,
  lastSeq: number,
  events: DomainEvent[],
  meta: { causationId: string | null; correlationId: string | null; traceparent: string | null; now: Date; newId: () => string },
): EventEnvelope[] {
  return events.map((e, i) => ({
    eventId: meta.newId(),
    conversationId,
    seq: lastSeq + i + 1,
    schemaVersion: SCHEMA_VERSION[e.type],
    occurredAt: meta.now.toISOString(),
    causationId: meta.causationId,
    correlationId: meta.correlationId,
    traceparent: meta.traceparent,
    ...e,
  }) as EventEnvelope);
}

/**
 * What the actor host tells the sender of a command besides events: a refusal, or that
 * confirmed data is safe (its snapshot written). Notices share the events topic, so they
 * reach the gateway that sent the command, but they are not events: no seq, and no fold
 * or projection reads them.
 */
export type Notice =
  | { type: 'rejected'; commandId: string; conversationId: string; correlationId: string | null; code: string; message: string }
  | { type: 'confirmed'; commandId: string; conversationId: string; correlationId: string | null; seq: number; data: Record<string, unknown> }
  | { type: 'erased'; commandId: string; conversationId: string; correlationId: string | null; erasure: Erasure };

/** What an erasure did, as the actor host reports it once the key and the snapshot are gone. */
export type Erasure = {
  /** The seq of the ConversationErased event. */
  seq: number;
  erasedAt: string;
  by: string | null;
  /** Prompts, replies and confirmed fields whose content was made unreadable. */
  prompts: number;
  replies: number;
  confirmedFields: number;
  /** False when the conversation had been erased before: the command only checked the key and snapshot are gone. */
  now: boolean;
  /** Whether this command destroyed the key (false: it was gone already). */
  keyDestroyed: boolean;
};

/** A notice record; confirmed data in it is sealed like the events' when a key is given. */
export function encodeNotice(n: Notice, key?: Uint8Array | null): OutgoingRecord {
  const headers: Record<string, string> = { kind: 'notice' };
  if (n.type !== 'confirmed' || !key) return { key: n.conversationId, value: JSON.stringify(n), headers };
  headers[SEALED_HEADER] = '1';
  const data = seal(key, JSON.stringify(n.data), sealContext(n.conversationId, n.commandId, 'data'));
  return { key: n.conversationId, value: JSON.stringify({ ...n, data }), headers };
}

export const isEventRecord = (record: LogRecord): boolean => record.headers.kind !== 'notice';

export function decodeNotice(record: LogRecord, keys?: Keyring): Notice {
  const n = JSON.parse(record.value) as Notice;
  if (n.type !== 'confirmed' || !isSealed(n.data)) return n;
  const key = keys?.get(n.conversationId);
  const text = key ? open(key, n.data, sealContext(n.conversationId, n.commandId, 'data')) : null;
  let data: Record<string, unknown> = {};
  try {
    if (text !== null) data = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // unreadable: the marker
  }
  return { ...n, data };
}
