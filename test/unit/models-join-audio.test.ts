import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import type { Speech } from '../../actors/ports.ts';
import { estimateDurationSec, mp3Bitrate } from '../../models/audio-format.ts';
import { joinAudio } from '../../models/join-audio.ts';
import { parseWav } from '../../models/wav.ts';

const espeak = (text: string): Speech => {
  const bytes = new Uint8Array(execFileSync('espeak-ng', ['--stdout', '-v', 'en', text]));
  return { bytes, format: 'wav', contentType: 'audio/wav', durationSec: parseWav(bytes).durationSec };
};

/** `frames` MPEG-1 layer III frames at 128 kb/s, 44.1 kHz (417 bytes each). */
const mp3 = (frames: number): Speech => {
  const bytes = new Uint8Array(417 * frames);
  for (let i = 0; i < frames; i++) bytes.set([0xff, 0xfb, 0x90, 0x00], i * 417);
  return { bytes, format: 'mp3', contentType: 'audio/mpeg', durationSec: estimateDurationSec(bytes, 'mp3') };
};

describe('the whole reply out of its sentences', () => {
  it('joins espeak-ng WAVs under one header whose length is the sum of theirs', () => {
    const a = espeak('Price is what you pay.');
    const b = espeak('Value is what you get.');
    const joined = joinAudio([a, b])!;
    const info = parseWav(joined.bytes);
    expect(info.durationSec).toBeCloseTo(a.durationSec + b.durationSec, 3);
    expect(joined.durationSec).toBeCloseTo(info.durationSec, 6);
    expect(joined.bytes.byteLength).toBe(44 + parseWav(a.bytes).dataBytes + parseWav(b.bytes).dataBytes);
  });

  it('joins MP3 frames, and refuses clips of different formats', () => {
    const joined = joinAudio([mp3(3), mp3(4)])!;
    expect(mp3Bitrate(joined.bytes)?.kbps).toBe(128);
    expect(joined.durationSec).toBeCloseTo(mp3(7).durationSec, 6);
    expect(joinAudio([mp3(1), espeak('Hi there, you.')])).toBeNull();
    expect(joinAudio([])).toBeNull();
  });
});
