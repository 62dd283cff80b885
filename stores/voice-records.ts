import { Buffer } from 'node:buffer';
import type { OutgoingRecord } from '../log/port.ts';

/**
 * Raw bytes of sealed audio per record of `gemello.voice`: base64 makes them 256 KiB, plus
 * a few hundred bytes of JSON, well under Kafka's default 1 MB record (and batch) limit.
 */
export const SEGMENT_BYTES = 192 * 1024;

/** What a kept clip is, besides its sealed bytes. */
export type ClipMeta = { audioId: string; conversationId: string; format: string; contentType: string; durationSec: number; sizeBytes: number };

/** One record of the voice topic: segment `part` (0-based) of `parts` of a clip's sealed bytes. */
export type VoiceSegment = ClipMeta & { part: number; parts: number; sealed: Uint8Array };

/** What a clip seals to, bound to its conversation and id: it opens only as that clip. */
export const clipContext = (conversationId: string, audioId: string) => `${conversationId}|${audioId}|voice`;

/** The records of one sealed clip, in order; each is appended on its own (the broker's batch limit). */
export function segmentRecords(meta: ClipMeta, sealed: Uint8Array): OutgoingRecord[] {
  const parts = Math.max(1, Math.ceil(sealed.byteLength / SEGMENT_BYTES));
  const out: OutgoingRecord[] = [];
  for (let part = 0; part < parts; part++) {
    const piece = sealed.subarray(part * SEGMENT_BYTES, (part + 1) * SEGMENT_BYTES);
    const value = JSON.stringify({ v: 1, ...meta, part, parts, sealed: Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength).toString('base64') });
    out.push({ key: meta.conversationId, value, headers: { type: 'VoiceSegment' } });
  }
  return out;
}

/** A record of the voice topic read back; null for anything else (skipped, like an unknown event). */
export function decodeSegment(value: string): VoiceSegment | null {
  try {
    const j = JSON.parse(value) as Record<string, unknown>;
    const str = (k: string) => (typeof j[k] === 'string' ? (j[k] as string) : null);
    const num = (k: string) => (typeof j[k] === 'number' && Number.isFinite(j[k]) ? (j[k] as number) : null);
    const [audioId, conversationId, format, contentType, sealed] = ['audioId', 'conversationId', 'format', 'contentType', 'sealed'].map(str);
    const [durationSec, sizeBytes, part, parts] = ['durationSec', 'sizeBytes', 'part', 'parts'].map(num);
    if (j.v !== 1 || !audioId || !conversationId || !format || !contentType || sealed == null || durationSec == null || sizeBytes == null || part == null || parts == null || part < 0 || part >= parts) return null;
    return { audioId, conversationId, format, contentType, durationSec, sizeBytes, part, parts, sealed: new Uint8Array(Buffer.from(sealed, 'base64')) };
  } catch {
    return null;
  }
}
