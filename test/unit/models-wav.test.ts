import { describe, expect, it } from 'vitest';
import { contentTypeOf, estimateDurationSec, mp3Bitrate } from '../../models/audio-format.ts';
import { NotWav, parseWav } from '../../models/wav.ts';

/** A PCM WAV header + `dataBytes` zero bytes, declaring `declared` data bytes. */
function wav(opts: { sampleRate?: number; channels?: number; bits?: number; dataBytes?: number; declared?: number } = {}): Uint8Array {
  const { sampleRate = 22_050, channels = 1, bits = 16, dataBytes = 44_100 } = opts;
  const declared = opts.declared ?? dataBytes;
  const bytes = new Uint8Array(44 + dataBytes);
  const view = new DataView(bytes.buffer);
  const ascii = (at: number, s: string) => { for (let i = 0; i < 4; i++) bytes[at + i] = s.charCodeAt(i); };
  ascii(0, 'RIFF'); view.setUint32(4, 36 + declared, true); ascii(8, 'WAVE');
  ascii(12, 'fmt '); view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, channels, true);
  view.setUint32(24, sampleRate, true); view.setUint32(28, (sampleRate * channels * bits) / 8, true);
  view.setUint16(32, (channels * bits) / 8, true); view.setUint16(34, bits, true);
  ascii(36, 'data'); view.setUint32(40, declared, true);
  return bytes;
}

describe('parseWav', () => {
  it('reads the format and the duration', () => {
    expect(parseWav(wav())).toEqual({ sampleRate: 22_050, channels: 1, bitsPerSample: 16, dataBytes: 44_100, durationSec: 1 });
    expect(parseWav(wav({ sampleRate: 48_000, channels: 2, dataBytes: 96_000 })).durationSec).toBe(0.5);
  });

  it('measures a streamed WAV by the bytes present, not its placeholder size', () => {
    // espeak-ng --stdout declares 0x7ffff000 data bytes because it cannot seek back.
    expect(parseWav(wav({ dataBytes: 11_025, declared: 0x7ffff000 })).durationSec).toBe(0.25);
  });

  it('skips chunks it does not know', () => {
    const plain = wav({ dataBytes: 4 });
    const withList = new Uint8Array(plain.byteLength + 14);
    withList.set(plain.subarray(0, 36));
    withList.set([0x4c, 0x49, 0x53, 0x54, 5, 0, 0, 0, 1, 2, 3, 4, 5, 0], 36); // 'LIST', odd size + pad byte
    withList.set(plain.subarray(36), 50);
    expect(parseWav(withList).dataBytes).toBe(4);
  });

  it('rejects bytes that are not a WAV', () => {
    expect(() => parseWav(new TextEncoder().encode('<html>502 Bad Gateway</html>'))).toThrow(NotWav);
    expect(() => parseWav(new Uint8Array(0))).toThrow(/not a WAV/);
    expect(() => parseWav(wav().subarray(0, 30))).toThrow(/not a WAV/);
  });
});

describe('audio duration estimates', () => {
  it('reads an mp3 bitrate from its first frame, after an ID3 tag', () => {
    const frames = new Uint8Array(4_170);
    frames.set([0xff, 0xfb, 0x90, 0x64]);
    expect(mp3Bitrate(frames)).toEqual({ kbps: 128, offset: 0 });
    expect(estimateDurationSec(frames, 'mp3')).toBeCloseTo(4_170 * 8 / 128_000, 6);

    const tagged = new Uint8Array(20 + frames.byteLength);
    tagged.set([0x49, 0x44, 0x33, 4, 0, 0, 0, 0, 0, 10]); // 'ID3', 10-byte body
    tagged.set(frames, 20);
    expect(mp3Bitrate(tagged)).toEqual({ kbps: 128, offset: 20 });
  });

  it('gives exact durations for wav and pcm, and a MIME type for each format', () => {
    expect(estimateDurationSec(wav(), 'wav')).toBe(1);
    expect(estimateDurationSec(new Uint8Array(48_000), 'pcm')).toBe(1);
    expect(contentTypeOf('mp3')).toBe('audio/mpeg');
    expect(contentTypeOf('wav')).toBe('audio/wav');
    expect(contentTypeOf('opus')).toBe('audio/ogg');
  });
});
