import type { Speech } from '../actors/ports.ts';
import { concatBytes } from './audio-format.ts';
import { parseWav } from './wav.ts';

/**
 * One clip made of several of the same format played one after the other: the whole
 * reply's audio out of its sentences' audio, so a reply is synthesised once.
 * - wav: the PCM data joined under one 44-byte header (all clips must share rate, channels
 *   and sample size);
 * - mp3: the frames joined (an ID3v2 tag is kept only at the start);
 * - anything else, or clips that do not match: null (the caller synthesises the whole text).
 */
export function joinAudio(clips: Speech[]): Speech | null {
  const first = clips[0];
  if (!first || clips.some((c) => c.format !== first.format)) return null;
  const durationSec = clips.reduce((sum, c) => sum + c.durationSec, 0);
  if (clips.length === 1) return first;
  if (first.format === 'mp3') {
    const parts = clips.map((c, i) => (i === 0 ? c.bytes : c.bytes.subarray(id3Length(c.bytes))));
    return { ...first, bytes: concatBytes(parts), durationSec };
  }
  if (first.format !== 'wav') return null;
  let infos: ReturnType<typeof parseWav>[];
  try {
    infos = clips.map((c) => parseWav(c.bytes));
  } catch {
    return null;
  }
  const f = infos[0]!;
  if (infos.some((i) => i.sampleRate !== f.sampleRate || i.channels !== f.channels || i.bitsPerSample !== f.bitsPerSample)) return null;
  const data = clips.map((c, i) => {
    const at = dataOffset(c.bytes);
    return c.bytes.subarray(at, at + infos[i]!.dataBytes);
  });
  const pcm = concatBytes(data);
  return { ...first, bytes: concatBytes([wavHeader(f.sampleRate, f.channels, f.bitsPerSample, pcm.byteLength), pcm]), durationSec: pcm.byteLength / (f.sampleRate * f.channels * (f.bitsPerSample / 8)) };
}

/** Where the data chunk's samples begin, or -1. */
function dataOffset(bytes: Uint8Array): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 12;
  while (at + 8 <= bytes.byteLength) {
    const id = String.fromCharCode(...bytes.subarray(at, at + 4));
    const size = view.getUint32(at + 4, true);
    if (id === 'data') return at + 8;
    at += 8 + size + (size % 2);
  }
  return -1;
}

/** A canonical RIFF/WAVE PCM header for `dataBytes` of samples. */
export function wavHeader(sampleRate: number, channels: number, bitsPerSample: number, dataBytes: number): Uint8Array {
  const header = new Uint8Array(44);
  const v = new DataView(header.buffer);
  const ascii = (at: number, s: string) => { for (let i = 0; i < 4; i++) header[at + i] = s.charCodeAt(i); };
  const blockAlign = channels * (bitsPerSample / 8);
  ascii(0, 'RIFF');
  v.setUint32(4, 36 + dataBytes, true);
  ascii(8, 'WAVE');
  ascii(12, 'fmt ');
  v.setUint32(16, 16, true);
  v.setUint16(20, 1, true);
  v.setUint16(22, channels, true);
  v.setUint32(24, sampleRate, true);
  v.setUint32(28, sampleRate * blockAlign, true);
  v.setUint16(32, blockAlign, true);
  v.setUint16(34, bitsPerSample, true);
  ascii(36, 'data');
  v.setUint32(40, dataBytes, true);
  return header;
}

/** The length of a leading ID3v2 tag (0: none). */
function id3Length(b: Uint8Array): number {
  if (b.byteLength < 10 || b[0] !== 0x49 || b[1] !== 0x44 || b[2] !== 0x33) return 0;
  return 10 + (((b[6]! & 0x7f) << 21) | ((b[7]! & 0x7f) << 14) | ((b[8]! & 0x7f) << 7) | (b[9]! & 0x7f));
}
