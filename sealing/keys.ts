import type { LogRecord } from '../log/port.ts';

/** The data keys a decoder may use, by conversation: a conversation that is absent decodes as erased. */
export type Keyring = { get(conversationId: string): Uint8Array | undefined };

/**
 * Where each conversation's data key lives (the read-model database's
 * `conversation_keys`), shared by every process. A destroyed key never comes back.
 */
export interface KeyStore {
  /** The keys of these conversations that exist; cached, one query for the rest. */
  get(conversationIds: Iterable<string>): Promise<Map<string, Uint8Array>>;
  /** The conversation's key, made on first use; throws KeyDestroyed once it was erased. */
  create(conversationId: string): Promise<Uint8Array>;
  /** Destroys the key for good (a tombstone in the log); resolves true if this call's tombstone is the one that destroyed it, false if an earlier erasure's did. */
  destroy(conversationId: string): Promise<boolean>;
  /** Marks a key destroyed in this process's cache (a ConversationErased was seen; its owner destroys it). */
  forget(conversationId: string): void;
}

/** The conversation was erased: its key is gone and no new one is made. */
export class KeyDestroyed extends Error {
  readonly code = 'conversation_erased';
}

/** Records whose content is sealed carry this header, so a reader knows which keys a batch needs. */
export const SEALED_HEADER = 'sealed';

/** The keys a batch of records needs, loaded in one call before decoding (which stays synchronous). */
export async function keysFor(store: KeyStore | null | undefined, records: readonly LogRecord[]): Promise<Keyring | undefined> {
  if (!store) return undefined;
  const ids = new Set<string>();
  for (const r of records) if (r.headers[SEALED_HEADER] === '1') ids.add(r.key);
  return ids.size ? store.get(ids) : new Map();
}
