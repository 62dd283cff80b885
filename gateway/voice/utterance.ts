import { concatBytes, estimateDurationSec } from '../../models/audio-format.ts';
import { parseWav } from '../../models/wav.ts';
import { audioFormat, uploadType, wavOfPcm16 } from './format.ts';
import type { AudioFormat } from './format.ts';

/** What one utterance may be at most (GEMELLO_VOICE_MAX_SECONDS, GEMELLO_VOICE_MAX_BYTES). */
export type VoiceLimits = { maxSeconds: number; maxBytes: number };

export const DEFAULT_VOICE_LIMITS: VoiceLimits = { maxSeconds: 60, maxBytes: 8 * 1024 * 1024 };

/** An utterance being received: its bytes so far, in memory only. */
export type Collecting = {
  format: AudioFormat;
  sampleRate: number | null;
  chunks: Uint8Array[];
  bytes: number;
  startedAt: number;
  /** Bytes of audio per second once known (a WAV header read, or pcm16's rate): the length is checked as it arrives. */
  bytesPerSec: number | null;
  headerBytes: number;
};

/** A refusal with its error code, said to the client once. */
export type Refusal = { code: 'audio_format' | 'audio_too_long'; message: string };

/** The utterance as it is handed to speech to text. */
export type Finished = { bytes: Uint8Array; format: AudioFormat; contentType: string; durationSec: number | null };

const MAX_WAV_HEADER = 4096;

/** Opens an utterance, or says why its format cannot be taken. */
export function startUtterance(format: string, sampleRate: number | undefined, now: number): Collecting | Refusal {
  const f = audioFormat(format);
  if (!f) return { code: 'audio_format', message: `format "${format}" is not one this gateway reads: use wav, mp3, webm, ogg, m4a, mp4, mpeg, mpga, flac or pcm16 (with sampleRate)` };
  if (f === 'pcm16' && !sampleRate) return { code: 'audio_format', message: 'format pcm16 needs sampleRate (samples per second of the 16-bit mono audio)' };
  return { format: f, sampleRate: sampleRate ?? null, chunks: [], bytes: 0, startedAt: now, bytesPerSec: f === 'pcm16' ? 2 * sampleRate! : null, headerBytes: 0 };
}

/** Adds a binary frame's bytes; a refusal when the utterance grew past a limit (its bytes are dropped then). */
export function addChunk(u: Collecting, chunk: Uint8Array, limits: VoiceLimits): Refusal | null {
  u.bytes += chunk.byteLength;
  if (u.bytes > limits.maxBytes) return tooLarge(limits);
  u.chunks.push(chunk);
  if (u.format === 'wav' && u.bytesPerSec === null && u.bytes >= 44 && u.bytes - chunk.byteLength < MAX_WAV_HEADER) {
    try {
      const all = concatBytes(u.chunks);
      const info = parseWav(all);
      u.bytesPerSec = info.sampleRate * info.channels * (info.bitsPerSample / 8);
      u.headerBytes = all.byteLength - info.dataBytes;
    } catch { /* the header is not all here yet, or it is not a WAV: audio.end says so */ }
  }
  if (u.bytesPerSec && (u.bytes - u.headerBytes) / u.bytesPerSec > limits.maxSeconds) return tooLong(limits);
  return null;
}

/** Whether an utterance has been open longer than its limit allows (a live stream cannot outrun the clock). */
export function overdue(u: Collecting, limits: VoiceLimits, now: number): Refusal | null {
  return now - u.startedAt > (limits.maxSeconds + GRACE_SEC) * 1000 ? tooLong(limits) : null;
}

/** Seconds an utterance may stay open beyond its longest length (the network's share). */
export const GRACE_SEC = 5;

/** The whole utterance, checked, in a container the transcriber reads. */
export function finish(u: Collecting, limits: VoiceLimits): Finished | Refusal {
  if (u.bytes === 0) return { code: 'audio_format', message: 'the utterance holds no audio: send binary frames between audio.start and audio.end' };
  const raw = concatBytes(u.chunks);
  u.chunks = [];
  let bytes = raw;
  let durationSec: number | null = null;
  if (u.format === 'pcm16') {
    bytes = wavOfPcm16(raw.byteLength % 2 ? raw.subarray(0, raw.byteLength - 1) : raw, u.sampleRate!);
    durationSec = Math.floor(raw.byteLength / 2) / u.sampleRate!;
  } else if (u.format === 'wav') {
    try {
      durationSec = parseWav(raw).durationSec;
    } catch (err) {
      return { code: 'audio_format', message: `format wav, but ${(err as Error).message}` };
    }
  } else if (u.format === 'mp3' || u.format === 'mpeg' || u.format === 'mpga') {
    durationSec = estimateDurationSec(raw, 'mp3');
  }
  if (durationSec !== null && durationSec > limits.maxSeconds) return tooLong(limits);
  // Other compressed containers: null, the session takes the transcriber's figure or how long the utterance was open.
  return { bytes, format: u.format === 'pcm16' ? 'wav' : u.format, contentType: uploadType(u.format), durationSec };
}

const tooLarge = (l: VoiceLimits): Refusal => ({ code: 'audio_too_long', message: `the utterance is larger than ${l.maxBytes} bytes (GEMELLO_VOICE_MAX_BYTES); send a shorter one` });
const tooLong = (l: VoiceLimits): Refusal => ({ code: 'audio_too_long', message: `the utterance is longer than ${l.maxSeconds} s (GEMELLO_VOICE_MAX_SECONDS); send a shorter one` });

export const isRefusal = (x: object): x is Refusal => 'code' in x;
