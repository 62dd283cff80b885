import { Buffer } from 'node:buffer';
import { z } from 'zod';
import type { OutgoingRecord } from '../log/port.ts';
import type { MasterKey } from './master-key.ts';
import { open, seal } from './seal.ts';
import type { Sealed } from './seal.ts';

/**
 * A record of the keys topic (`gemello.keys`, compacted, key = conversationId): the
 * conversation's data key wrapped by the master key, or its tombstone once erased. The
 * last record of a conversation is its truth; compaction removes the ones before it.
 */
export type KeyRecord =
  | { conversationId: string; kind: 'key'; kek: string; wrapped: Sealed }
  /** id: this tombstone's own (random), so the erasure that wrote it knows it from another's. */
  | { conversationId: string; kind: 'destroyed'; at: string; id?: string };

const Value = z.union([
  z.object({ v: z.literal(1), kek: z.string(), wrapped: z.object({ enc: z.literal('a256gcm'), iv: z.string(), ct: z.string() }) }),
  z.object({ v: z.literal(1), destroyed: z.literal(true), at: z.string(), id: z.string().optional() }),
]);

const context = (conversationId: string) => `gemello.keys|${conversationId}`;

/** The data key wrapped by the master key, bound to its conversation (it cannot be moved to another). */
export const wrapKey = (master: MasterKey, conversationId: string, dataKey: Uint8Array): Sealed =>
  seal(master.key, Buffer.from(dataKey).toString('base64'), context(conversationId));

/** The data key, or null when the wrapping does not open with this master key. */
export function unwrapKey(master: MasterKey, conversationId: string, wrapped: Sealed): Uint8Array | null {
  const text = open(master.key, wrapped, context(conversationId));
  return text === null ? null : new Uint8Array(Buffer.from(text, 'base64'));
}

export function encodeKeyRecord(r: KeyRecord): OutgoingRecord {
  const value = r.kind === 'key' ? { v: 1, kek: r.kek, wrapped: r.wrapped } : { v: 1, destroyed: true, at: r.at, ...(r.id ? { id: r.id } : {}) };
  return { key: r.conversationId, value: JSON.stringify(value), headers: { type: r.kind === 'key' ? 'DataKey' : 'DataKeyDestroyed' } };
}

/** The record's meaning; null for a record compaction has blanked (embedded log) or one this version cannot read. */
export function decodeKeyRecord(key: string, value: string): KeyRecord | null {
  if (value.trim() === '') return null;
  let json: unknown;
  try {
    json = JSON.parse(value);
  } catch {
    return null;
  }
  const v = Value.safeParse(json);
  if (!v.success) return null;
  return 'destroyed' in v.data ? { conversationId: key, kind: 'destroyed', at: v.data.at, ...(v.data.id ? { id: v.data.id } : {}) } : { conversationId: key, kind: 'key', kek: v.data.kek, wrapped: v.data.wrapped };
}
