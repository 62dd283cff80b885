/**
 * The audio formats an utterance may come in. The containers are the ones OpenAI's
 * transcription reads (and so most OpenAI-compatible servers); `pcm16` (raw 16-bit
 * little-endian mono at `sampleRate`, what a browser's AudioWorklet gives) is wrapped in a
 * WAV header before it is sent on.
 */
export const AUDIO_FORMATS = ['wav', 'mp3', 'webm', 'ogg', 'm4a', 'mp4', 'mpeg', 'mpga', 'flac', 'pcm16'] as const;
export type AudioFormat = (typeof AUDIO_FORMATS)[number];

const ALIASES: Record<string, AudioFormat> = { wave: 'wav', 'x-wav': 'wav', 'vnd.wave': 'wav', 'x-m4a': 'm4a', 'x-flac': 'flac', opus: 'ogg', pcm: 'pcm16', l16: 'pcm16' };

/** `wav`, `audio/wav`, `audio/webm;codecs=opus`… as one of AUDIO_FORMATS, or null. */
export function audioFormat(name: string): AudioFormat | null {
  const bare = name.trim().toLowerCase().split(';')[0]!.trim().replace(/^audio\//, '');
  if ((AUDIO_FORMATS as readonly string[]).includes(bare)) return bare as AudioFormat;
  return ALIASES[bare] ?? null;
}

/** The MIME type the utterance is uploaded with. */
export function uploadType(format: AudioFormat): string {
  switch (format) {
    case 'wav': case 'pcm16': return 'audio/wav';
    case 'mp3': case 'mpeg': case 'mpga': return 'audio/mpeg';
    case 'm4a': case 'mp4': return 'audio/mp4';
    default: return `audio/${format}`;
  }
}

/** A 44-byte RIFF header in front of raw 16-bit mono PCM. */
export function wavOfPcm16(pcm: Uint8Array, sampleRate: number): Uint8Array {
  const out = new Uint8Array(44 + pcm.byteLength);
  const view = new DataView(out.buffer);
  const ascii = (at: number, s: string) => { for (let i = 0; i < s.length; i++) out[at + i] = s.charCodeAt(i); };
  ascii(0, 'RIFF'); view.setUint32(4, 36 + pcm.byteLength, true); ascii(8, 'WAVE');
  ascii(12, 'fmt '); view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, sampleRate, true); view.setUint32(28, sampleRate * 2, true); view.setUint16(32, 2, true); view.setUint16(34, 16, true);
  ascii(36, 'data'); view.setUint32(40, pcm.byteLength, true);
  out.set(pcm, 44);
  return out;
}
