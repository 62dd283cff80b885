import type { AudioChunkUpdate, ReplyStreams, StreamSoFar, StreamUpdate } from '../../actors/ports.ts';

const MAX_CHUNKS = 64;
const MAX_CONVERSATIONS = 1_000;
const MAX_CLIPS = 64;
const CLIP_MS = 60_000;

/** Reply streams in one process (embedded mode): listeners are called at once. */
export function createMemoryReplyStreams(): ReplyStreams {
  const current = new Map<string, StreamSoFar>();
  // The recent chunks of the conversations that spoke last (bounded both ways).
  const chunks = new Map<string, AudioChunkUpdate[]>();
  // Clips just synthesised, until the audio cache has them (a minute, at most MAX_CLIPS).
  const clips = new Map<string, { bytes: Uint8Array; contentType: string; until: number }>();
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
    async forget(conversationId) {
      for (const c of chunks.get(conversationId) ?? []) clips.delete(c.audioId);
      chunks.delete(conversationId);
      current.delete(conversationId);
    },
    async keepClip(audioId, clip) {
      clips.set(audioId, { ...clip, until: Date.now() + CLIP_MS });
      for (const [id, c] of clips) if (clips.size > MAX_CLIPS || c.until < Date.now()) clips.delete(id);
    },
    async clip(audioId) {
      const c = clips.get(audioId);
      return c && c.until >= Date.now() ? { bytes: c.bytes, contentType: c.contentType } : null;
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
