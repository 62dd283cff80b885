import type { AudioChunkUpdate, ReplyStreams, StreamSoFar, StreamUpdate } from '../../actors/ports.ts';

const MAX_CHUNKS = 64;
const MAX_CONVERSATIONS = 1_000;

/** Reply streams in one process (embedded mode): listeners are called at once. */
export function createMemoryReplyStreams(): ReplyStreams {
  const current = new Map<string, StreamSoFar>();
  // The recent chunks of the conversations that spoke last (bounded both ways).
  const chunks = new Map<string, AudioChunkUpdate[]>();
  const listeners = new Set<(u: StreamUpdate) => void>();
  return {
    kind: 'memory',
    async publish(u) {
      if (u.kind === 'start') current.set(u.conversationId, { promptSeq: u.promptSeq, gen: u.gen, text: '' });
      else if (u.kind === 'delta') {
        const c = current.get(u.conversationId);
        if (c && c.gen === u.gen) c.text += u.text;
      } else if (u.kind === 'audio') {
        const list = chunks.get(u.conversationId) ?? [];
        list.push(u);
        if (list.length > MAX_CHUNKS) list.shift();
        chunks.delete(u.conversationId);
        chunks.set(u.conversationId, list); // the most recent last, so the bound drops the stalest
        if (chunks.size > MAX_CONVERSATIONS) chunks.delete(chunks.keys().next().value!);
      } else if (current.get(u.conversationId)?.gen === u.gen) current.delete(u.conversationId);
      for (const l of listeners) l(u);
    },
    async current(conversationId) {
      const c = current.get(conversationId);
      return c ? { ...c } : null;
    },
    async chunks(conversationId) {
      return [...(chunks.get(conversationId) ?? [])];
    },
    async subscribe(listener) {
      listeners.add(listener);
      return () => void listeners.delete(listener);
    },
    async close() {
      listeners.clear();
    },
  };
}
