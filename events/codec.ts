import { EventData, RawEnvelope, SCHEMA_VERSION } from './schemas.ts';
import type { DomainEvent, EventEnvelope, LoggedEvent } from './schemas.ts';
import { upcast } from './upcast.ts';
import type { LogRecord, OutgoingRecord } from '../log/port.ts';

/** Kafka record for an event: key = conversationId, JSON value, type/version/traceparent headers. */
export function encodeEvent(event: EventEnvelope): OutgoingRecord {
  const headers: Record<string, string> = {
    'event-type': event.type,
    'schema-version': String(event.schemaVersion),
  };
  if (event.traceparent) headers.traceparent = event.traceparent;
  return { key: event.conversationId, value: JSON.stringify(event), headers };
}

/** Thrown when a record on the events topic is not a valid event. */
export class UndecodableEvent extends Error {
  readonly code = 'undecodable_event';
}

/** Parses, validates and upcasts one stored event. */
export function decodeEventValue(value: string): EventEnvelope {
  let json: unknown;
  try {
    json = JSON.parse(value);
  } catch {
    throw new UndecodableEvent('event record is not JSON');
  }
  const raw = RawEnvelope.safeParse(json);
  if (!raw.success) throw new UndecodableEvent(`bad event envelope: ${raw.error.issues[0]?.message}`);
  const env = raw.data;
  const current = SCHEMA_VERSION[env.type];
  if (env.schemaVersion > current) {
    throw new UndecodableEvent(`${env.type} v${env.schemaVersion} is newer than this build (v${current})`);
  }
  const parsed = EventData[env.type].safeParse(upcast(env.type, env.schemaVersion, current, env.data));
  if (!parsed.success) {
    throw new UndecodableEvent(`bad ${env.type} data: ${parsed.error.issues[0]?.path.join('.')} ${parsed.error.issues[0]?.message}`);
  }
  return { ...env, schemaVersion: current, data: parsed.data } as EventEnvelope;
}

export function decodeEvent(record: LogRecord): LoggedEvent {
  return { ...decodeEventValue(record.value), position: { partition: record.partition, offset: record.offset } };
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
  | { type: 'confirmed'; commandId: string; conversationId: string; correlationId: string | null; seq: number; data: Record<string, unknown> };

export function encodeNotice(n: Notice): OutgoingRecord {
  return { key: n.conversationId, value: JSON.stringify(n), headers: { kind: 'notice' } };
}

export const isEventRecord = (record: LogRecord): boolean => record.headers.kind !== 'notice';

export function decodeNotice(record: LogRecord): Notice {
  return JSON.parse(record.value) as Notice;
}
