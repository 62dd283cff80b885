import type { EventEnvelope, EventType } from '../events/schemas.ts';
import { ERASED_TEXT } from './seal.ts';

/**
 * The field of each event type that holds a person's content (what they said, what they
 * were told, what they confirmed): sealed with the conversation's key in the log, and
 * replaced by a marker (text "[erased]", data {}) once that key is destroyed.
 */
export const PERSONAL: Partial<Record<EventType, { field: string; json: boolean }>> = {
  PromptReceived: { field: 'text', json: false },
  ReplyGenerated: { field: 'text', json: false },
  ReplyStopped: { field: 'text', json: false },
  SpeechReceived: { field: 'text', json: false },
  DataConfirmed: { field: 'data', json: true },
  DataProposed: { field: 'data', json: true },
  MessageSaid: { field: 'text', json: false },
  ValueRead: { field: 'value', json: true },
  BackendCalled: { field: 'result', json: true },
};

export const sealContext = (conversationId: string, eventId: string, field: string) => `${conversationId}|${eventId}|${field}`;
export const marker = (json: boolean): unknown => (json ? {} : ERASED_TEXT);

/** Whether an event carries personal content (and so needs the conversation's key to be written). */
export const hasPersonalContent = (type: EventType): boolean => PERSONAL[type] !== undefined;

/** The event with its personal content replaced by the erased marker. */
export function withoutContent<E extends EventEnvelope>(event: E): E {
  const p = PERSONAL[event.type];
  return p ? ({ ...event, data: { ...event.data, [p.field]: marker(p.json) } } as E) : event;
}

