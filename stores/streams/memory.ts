import type { ReplyStreams, StreamSoFar, StreamUpdate } from '../../actors/ports.ts';

/** Reply streams in one process (embedded mode): listeners are called at once. */
export function createMemoryReplyStreams(): ReplyStreams {
  const current = new Map<string, StreamSoFar>();
  const listeners = new Set<(u: StreamUpdate) => void>();
  return {
    kind: 'memory',
    async publish(u) {
      if (u.kind === 'start') current.set(u.conversationId, { promptSeq: u.promptSeq, gen: u.gen, text: '' });
      else if (u.kind === 'delta') {
        const c = current.get(u.conversationId);
        if (c && c.gen === u.gen) c.text += u.text;
      } else if (current.get(u.conversationId)?.gen === u.gen) current.delete(u.conversationId);
      for (const l of listeners) l(u);
    },
    async current(conversationId) {
      const c = current.get(conversationId);
      return c ? { ...c } : null;
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
