import type { AudioChunkUpdate } from '../../actors/ports.ts';
import type { EventEnvelope } from '../../events/schemas.ts';
import type { Followed, SessionState } from './context.ts';

/**
 * A spoken sentence of a reply, for a socket that streams: an `audio.chunk` frame, in index
 * order, once each. Chunks of a reply the socket saw stopped are dropped (the host stops
 * speaking it too, but a chunk published just before the stop may still be under way); a
 * new generation of the reply (its host died) starts again at index 0.
 */
export function onChunk(s: SessionState, conversationId: string, f: Followed, u: AudioChunkUpdate): void {
  if (u.promptSeq <= f.silenced) return;
  const sp = f.spoken;
  if (sp && u.promptSeq < sp.promptSeq) return;
  if (!sp || sp.promptSeq !== u.promptSeq || sp.gen !== u.gen) f.spoken = { promptSeq: u.promptSeq, gen: u.gen, next: 0 };
  if (u.index < f.spoken!.next) return;
  f.spoken!.next = u.index + 1;
  s.out.send({
    type: 'audio.chunk',
    conversationId,
    promptSeq: u.promptSeq,
    index: u.index,
    audioUrl: `/api/audio/${u.audioId}`,
    format: u.format,
    durationSec: u.durationSec,
    offset: u.offset,
    text: u.text,
    ...(u.last ? { last: true } : {}),
  });
}

/**
 * What a resume learns of the replies' speech from the events it sends: a reply whose whole
 * audio is out (AudioReady, AudioFailed) or that was stopped needs no chunks any more.
 */
export function speechOver() {
  const promptOf = new Map<number, number>();
  const over = new Set<number>();
  return {
    saw(e: EventEnvelope): void {
      if (e.type === 'ReplyGenerated') promptOf.set(e.seq, e.data.promptSeq);
      else if (e.type === 'ReplyStopped') over.add(e.data.promptSeq);
      else if (e.type === 'AudioReady' || e.type === 'AudioFailed') {
        const p = promptOf.get(e.data.replySeq);
        if (p !== undefined) over.add(p);
      }
    },
    /** The chunks so far of the last reply still being spoken, sent as live ones are. */
    send(s: SessionState, conversationId: string, f: Followed, chunks: AudioChunkUpdate[]): void {
      const last = chunks.at(-1);
      // A reply whose last chunk is out has its whole audio on the way (AudioReady): nothing to catch up.
      if (!last || last.last || over.has(last.promptSeq)) return;
      for (const c of chunks) if (c.promptSeq === last.promptSeq && c.gen === last.gen) onChunk(s, conversationId, f, c);
    },
  };
}
