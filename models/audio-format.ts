import { Buffer } from 'node:buffer';
import { parseWav } from './wav.ts';

/** The MIME type for an audio format name (as OpenAI's response_format spells them). */
export function contentTypeOf(format: string): string {
  switch (format) {
    case 'mp3': return 'audio/mpeg';
    case 'opus': return 'audio/ogg'; // OpenAI wraps opus in an Ogg container
    case 'aac': return 'audio/aac';
    case 'flac': return 'audio/flac';
    case 'wav': return 'audio/wav';
    case 'pcm': return 'audio/pcm'; // raw 24 kHz 16-bit mono little-endian, no header
    default: return 'application/octet-stream';
  }
}

/** Bitrates assumed for compressed formats whose length cannot be read cheaply. */
const ASSUMED_KBPS: Record<string, number> = { opus: 32, aac: 64, flac: 400 };

/**
 * Estimates how long audio plays from its bytes:
 * - wav: exact, from the header;
 * - pcm: exact, OpenAI's pcm is 24 000 samples/s × 2 bytes;
 * - mp3: bytes × 8 / bitrate, the bitrate read from the first frame header (exact for
 *   constant bitrate, which is what TTS servers produce);
 * - others: bytes × 8 / an assumed typical bitrate (rough, ±50 %).
 */
export function estimateDurationSec(bytes: Uint8Array, format: string): number {
  if (format === 'wav') {
    try { return parseWav(bytes).durationSec; } catch { /* fall through to a guess */ }
  }
  if (format === 'pcm') return bytes.byteLength / 48_000;
  if (format === 'mp3') {
    const frame = mp3Bitrate(bytes);
    if (frame) return ((bytes.byteLength - frame.offset) * 8) / (frame.kbps * 1000);
  }
  return (bytes.byteLength * 8) / ((ASSUMED_KBPS[format] ?? 128) * 1000);
}

const MPEG1_L3_KBPS = [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320];
const MPEG2_L3_KBPS = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];

/** The bitrate of the first MPEG layer III frame, after any ID3v2 tag; null if none is found. */
export function mp3Bitrate(bytes: Uint8Array): { kbps: number; offset: number } | null {
  let start = 0;
  if (bytes.byteLength >= 10 && bytes[0] === 0x49 && bytes[1] === 0x44 && bytes[2] === 0x33) {
    // ID3v2: a 10-byte header, then a 28-bit "syncsafe" size (7 bits per byte).
    start = 10 + (((bytes[6]! & 0x7f) << 21) | ((bytes[7]! & 0x7f) << 14) | ((bytes[8]! & 0x7f) << 7) | (bytes[9]! & 0x7f));
  }
  const limit = Math.min(bytes.byteLength - 4, start + 4096);
  for (let i = start; i <= limit; i++) {
    if (bytes[i] !== 0xff || (bytes[i + 1]! & 0xe0) !== 0xe0) continue;
    const version = (bytes[i + 1]! >> 3) & 0b11; // 3 = MPEG1, 2 = MPEG2, 0 = MPEG2.5
    const layer = (bytes[i + 1]! >> 1) & 0b11; // 1 = layer III
    const index = bytes[i + 2]! >> 4;
    if (version === 1 || layer !== 1 || index === 0 || index === 15) continue;
    const kbps = (version === 3 ? MPEG1_L3_KBPS : MPEG2_L3_KBPS)[index]!;
    return { kbps, offset: i };
  }
  return null;
}

/** Audio parts as one byte array (a Uint8Array, not a Buffer, so `slice` still copies). */
export const concatBytes = (parts: Uint8Array[]): Uint8Array => new Uint8Array(Buffer.concat(parts));
