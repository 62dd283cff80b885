/** What a WAV header says about its audio. */
export type WavInfo = {
  sampleRate: number;
  channels: number;
  bitsPerSample: number;
  /** Bytes of audio actually present (see parseWav). */
  dataBytes: number;
  durationSec: number;
};

/** Thrown when bytes are not a PCM WAV file. */
export class NotWav extends Error {
  readonly code = 'not_wav';
}

/**
 * Reads a RIFF/WAVE header. Streamed WAVs (espeak-ng --stdout) cannot seek back to
 * fill in sizes and declare a huge placeholder (0x7ffff000), so the data size is
 * capped at the bytes actually present.
 */
export function parseWav(bytes: Uint8Array): WavInfo {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const tag = (at: number) => String.fromCharCode(...bytes.subarray(at, at + 4));
  if (bytes.byteLength < 12 || tag(0) !== 'RIFF' || tag(8) !== 'WAVE') {
    throw new NotWav('not a WAV file: missing RIFF/WAVE header');
  }
  let format: { channels: number; sampleRate: number; bitsPerSample: number; blockAlign: number } | null = null;
  let at = 12;
  while (at + 8 <= bytes.byteLength) {
    const id = tag(at);
    const size = view.getUint32(at + 4, true);
    const body = at + 8;
    if (id === 'fmt ') {
      if (size < 16 || body + 16 > bytes.byteLength) throw new NotWav('not a WAV file: truncated fmt chunk');
      format = {
        channels: view.getUint16(body + 2, true),
        sampleRate: view.getUint32(body + 4, true),
        blockAlign: view.getUint16(body + 12, true),
        bitsPerSample: view.getUint16(body + 14, true),
      };
    } else if (id === 'data') {
      if (!format) throw new NotWav('not a WAV file: data chunk before fmt chunk');
      if (format.sampleRate === 0 || format.channels === 0 || format.bitsPerSample === 0) {
        throw new NotWav('not a WAV file: zero sample rate, channels or sample size');
      }
      const dataBytes = Math.min(size, bytes.byteLength - body);
      const bytesPerSecond = format.sampleRate * (format.blockAlign || (format.channels * format.bitsPerSample) / 8);
      return {
        sampleRate: format.sampleRate,
        channels: format.channels,
        bitsPerSample: format.bitsPerSample,
        dataBytes,
        durationSec: dataBytes / bytesPerSecond,
      };
    }
    at = body + size + (size % 2); // chunks are padded to an even length
  }
  throw new NotWav('not a WAV file: no data chunk');
}
