import type { EventType } from './schemas.ts';

/** Turns the data of version `from` into the data of version `from + 1`. */
export type Upcaster = (data: Record<string, unknown>) => Record<string, unknown>;

/**
 * Upcasters by event type and the version they read. Old events stay in the log as
 * they were written; readers see the current shape.
 */
export const UPCASTERS: Partial<Record<EventType, Record<number, Upcaster>>> = {
  // v1 carried the twin as `digitalTwinId` / `digitalTwinName` (the seed's field names)
  // and had no user.
  ConversationStarted: {
    1: (d) => ({
      twinId: d.digitalTwinId,
      twinName: d.digitalTwinName,
      userId: null,
      metadata: d.metadata ?? {},
    }),
  },
  // v2 may seal the personal field; a v1 event holds it in the clear, which v2 also allows.
  PromptReceived: { 1: (d) => d },
  DataConfirmed: { 1: (d) => d },
  ReplyGenerated: { 1: (d) => d },
};

/** Brings `data` from `version` up to `target`, or throws if a step is missing. */
export function upcast(type: EventType, version: number, target: number, data: unknown): unknown {
  let current = data as Record<string, unknown>;
  for (let v = version; v < target; v++) {
    const step = UPCASTERS[type]?.[v];
    if (!step) throw new Error(`no upcaster for ${type} v${v} -> v${v + 1}`);
    current = step(current);
  }
  return current;
}
