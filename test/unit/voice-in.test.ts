// Speech in at the session, against in-memory ports: what a client gets when no speech to
// text is configured, when its audio frames come out of order, and what a spoken prompt
// turns into (a SubmitPrompt with its speech, or a ReportSpeechFailure), and the decider's
// events for both.
import { describe, expect, it } from 'vitest';
import { createCommandClient } from '../../actors/command-client.ts';
import { decide } from '../../actors/decide.ts';
import { EffectError } from '../../actors/ports.ts';
import type { SpeechToText } from '../../actors/ports.ts';
import { initialState } from '../../actors/state.ts';
import { createTwinCatalog } from '../../actors/twins.ts';
import type { Feed } from '../../gateway/feed.ts';
import { createSession, DEFAULT_LIMITS, sessionMetrics } from '../../gateway/session.ts';
import type { SessionDeps } from '../../gateway/session.ts';
import type { VoiceSettings } from '../../gateway/session/voice.ts';
import { parseWav } from '../../models/wav.ts';
import type { EventLog, OutgoingRecord } from '../../log/port.ts';
import { createMetrics } from '../../telemetry/metrics.ts';

type Frame = Record<string, unknown>;
const twin = { digitalTwinId: 'warren-buffett-001', digitalTwinName: 'Warren Buffett' };

function world(voice: Partial<VoiceSettings> | null, limits: Partial<SessionDeps['limits']> = {}) {
  const appended: OutgoingRecord[] = [];
  const log = { kind: 'kafka', partitions: 12, append: async (_t: string, _p: number, r: OutgoingRecord[]) => (appended.push(...r), appended.length - 1) } as unknown as EventLog;
  const feed = { follow: () => () => {} } as unknown as Feed;
  const deps: SessionDeps = {
    log, feed, commands: createCommandClient({ log }), catalog: createTwinCatalog(), metrics: createMetrics(), logger: { info() {}, warn() {}, error() {} },
    limits: { ...DEFAULT_LIMITS, ...limits }, eventsAfter: null,
    voice: voice ? { stt: null, limits: { maxSeconds: 5, maxBytes: 100_000 }, keep: null, unavailable: 'set OPENAI_API_KEY', ...voice } : null,
  };
  const frames: Frame[] = [];
  const session = createSession(deps, { send: (t) => frames.push(JSON.parse(t)), buffered: () => 0, close() {} }, null, sessionMetrics(deps.metrics));
  return {
    frames,
    send: (f: unknown) => session.onText(JSON.stringify(f)),
    bytes: (b: Uint8Array) => session.onBinary(b),
    commands: () => appended.map((r) => JSON.parse(r.value) as { type: string; data: Record<string, unknown> }),
  };
}

const heard = (text: string, seen: Uint8Array[] = []): SpeechToText => ({ name: 'fake', transcribe: async (u) => (seen.push(u.bytes), { text, durationSec: null }) });

describe('speech in at the session', () => {
  it('without speech to text: stt_unavailable saying how to enable it; the utterance\'s frames are dropped quietly and the socket goes on', async () => {
    const w = world({ stt: null });
    await w.send({ type: 'audio.start', ...twin, format: 'wav', requestId: 'a' });
    w.bytes(new Uint8Array(100));
    await w.send({ type: 'audio.end' });
    expect(w.frames).toEqual([expect.objectContaining({ type: 'error', code: 'stt_unavailable', requestId: 'a', error: expect.stringMatching(/OPENAI_API_KEY/) })]);
    w.bytes(new Uint8Array(3));
    expect(w.frames.at(-1)).toMatchObject({ code: 'binary_frame' });
    await w.send({ ...twin, prompt: 'typed' });
    expect(w.commands().map((c) => c.type)).toEqual(['SubmitPrompt']);
  });

  it('an audio.start refused by the rate limit: one rate_limited, its binary frames dropped quietly until audio.end', async () => {
    const w = world({ stt: heard('ciao') }, { ratePerSec: 1, burst: 1 });
    await w.send({ type: 'prompt', ...twin, prompt: 'uses the one frame allowed' });
    await w.send({ type: 'audio.start', ...twin, format: 'wav', requestId: 'r' });
    for (let i = 0; i < 5; i++) w.bytes(new Uint8Array(10));
    await w.send({ type: 'audio.end' });
    expect(w.frames.map((f) => f.code)).toEqual(['rate_limited', 'rate_limited']);
    // The refused audio.end closed it: a binary frame now is outside any utterance.
    w.bytes(new Uint8Array(1));
    expect(w.frames.length).toBe(3);
  });

  it('a gateway without voice settings says stt_unavailable too', async () => {
    const w = world(null);
    await w.send({ type: 'audio.start', ...twin, format: 'wav' });
    expect(w.frames[0]).toMatchObject({ code: 'stt_unavailable' });
  });

  it('audio.end without audio.start, and audio.start over an open utterance, are audio_sequence', async () => {
    const w = world({ stt: heard('ciao') });
    await w.send({ type: 'audio.end', requestId: 'e' });
    expect(w.frames.at(-1)).toMatchObject({ code: 'audio_sequence', requestId: 'e' });
    await w.send({ type: 'audio.start', ...twin, format: 'pcm16', sampleRate: 16000 });
    await w.send({ type: 'audio.start', ...twin, format: 'pcm16' });
    expect(w.frames.slice(-2).map((f) => f.code)).toEqual(['audio_sequence', 'audio_format']);
    // Over a refused one (the client was told) a new audio.start simply begins: no audio_sequence for it.
    const told = w.frames.length;
    await w.send({ type: 'audio.start', ...twin, format: 'pcm16', sampleRate: 16000, requestId: 'again' });
    expect(w.frames.slice(told)).toEqual([]);
    w.bytes(new Uint8Array(16000));
    await w.send({ type: 'audio.end' });
    expect(w.commands().at(-1)).toMatchObject({ type: 'SubmitPrompt', correlationId: 'again', data: { text: 'ciao' } });
  });

  it('raw pcm16 is sent on as a WAV of the same samples; the prompt carries its speech', async () => {
    const seen: Uint8Array[] = [];
    const w = world({ stt: heard(' buongiorno ', seen) });
    await w.send({ type: 'audio.start', ...twin, format: 'audio/L16', sampleRate: 16000, requestId: 'p' });
    w.bytes(new Uint8Array(16000));
    w.bytes(new Uint8Array(16000));
    await w.send({ type: 'audio.end' });
    const info = parseWav(seen[0]!);
    expect(info).toMatchObject({ sampleRate: 16000, channels: 1, bitsPerSample: 16, dataBytes: 32000, durationSec: 1 });
    const [cmd] = w.commands();
    expect(cmd).toMatchObject({ type: 'SubmitPrompt', correlationId: 'p', data: { text: 'buongiorno', speech: { format: 'wav', durationSec: 1, kept: false } } });
  });

  it('a prompt typed while an utterance is transcribed reaches the log after it: frames of a socket keep their order', async () => {
    const slow: SpeechToText = { name: 'slow', transcribe: async () => (await new Promise((r) => setTimeout(r, 80)), { text: 'spoken first', durationSec: null }) };
    const w = world({ stt: slow });
    await w.send({ type: 'audio.start', ...twin, format: 'pcm16', sampleRate: 16000 });
    w.bytes(new Uint8Array(16000));
    const ended = w.send({ type: 'audio.end' });
    const typed = w.send({ type: 'prompt', ...twin, prompt: 'typed second' });
    await Promise.all([ended, typed]);
    const prompts = w.commands().filter((c) => c.type === 'SubmitPrompt');
    expect(prompts.map((c) => c.data.text)).toEqual(['spoken first', 'typed second']);
  });

  it('utterances waiting for their turn count against the bound: the third at once of one socket is rate_limited', async () => {
    let calls = 0;
    const slow: SpeechToText = { name: 'slow', transcribe: async () => (calls++, await new Promise((r) => setTimeout(r, 50)), { text: 'ciao', durationSec: null }) };
    const w = world({ stt: slow }, { ratePerSec: 1000, burst: 1000 });
    const ends: Promise<void>[] = [];
    for (let i = 0; i < 5; i++) {
      await w.send({ type: 'audio.start', ...twin, format: 'pcm16', sampleRate: 16000, requestId: `u${i}` });
      w.bytes(new Uint8Array(16000));
      ends.push(w.send({ type: 'audio.end' }));
    }
    await Promise.all(ends);
    expect(calls).toBe(2);
    expect(w.frames.filter((f) => f.code === 'rate_limited').map((f) => f.requestId)).toEqual(['u2', 'u3', 'u4']);
  });

  it('a transcriber that fails, or hears nothing, becomes ReportSpeechFailure with its code', async () => {
    const failing: SpeechToText = { name: 'x', transcribe: async () => { throw new EffectError('stt_timeout', 'no answer within 15000 ms', true); } };
    const w = world({ stt: failing });
    await w.send({ type: 'audio.start', ...twin, format: 'webm' });
    w.bytes(new Uint8Array(10));
    await w.send({ type: 'audio.end' });
    const silent = world({ stt: heard('  ') });
    await silent.send({ type: 'audio.start', ...twin, format: 'ogg' });
    silent.bytes(new Uint8Array(10));
    await silent.send({ type: 'audio.end' });
    expect(w.commands()[0]).toMatchObject({ type: 'ReportSpeechFailure', data: { code: 'stt_timeout', format: 'webm' } });
    // The client is told at once, not only once the failure is back from the log.
    expect(w.frames).toEqual([expect.objectContaining({ type: 'error', code: 'stt_failed', reason: 'stt_timeout' })]);
    expect(silent.frames[0]).toMatchObject({ code: 'stt_failed', reason: 'stt_empty' });
    expect(silent.commands()[0]).toMatchObject({ type: 'ReportSpeechFailure', data: { code: 'stt_empty' } });
  });
});

describe('decide: speech', () => {
  const meta = { commandId: 'c1', conversationId: 'v', correlationId: 'r', principal: null, traceparent: null, issuedAt: '2026-12-01T00:00:00Z' };
  const t = { id: 'warren-buffett-001', name: 'Warren Buffett' };
  it('a spoken prompt is SpeechReceived then PromptReceived {source: voice}, after the start of a new conversation', () => {
    const events = decide({ ...meta, type: 'SubmitPrompt', data: { twin: t, text: 'ciao', speech: { audioId: 'a1', format: 'wav', durationSec: 1.5, kept: false } } }, initialState('v'));
    expect(events.map((e) => e.type)).toEqual(['ConversationStarted', 'SpeechReceived', 'PromptReceived']);
    expect(events[1]!.data).toEqual({ audioId: 'a1', format: 'wav', durationSec: 1.5, kept: false, text: 'ciao' });
    expect(events[2]!.data).toMatchObject({ text: 'ciao', source: 'voice', requestId: 'r' });
  });
  it('a failed utterance is SpeechFailed, and owes no reply', () => {
    const events = decide({ ...meta, type: 'ReportSpeechFailure', data: { twin: t, audioId: 'a1', format: 'wav', durationSec: 1, code: 'stt_http_500', reason: 'boom' } }, initialState('v'));
    expect(events.map((e) => e.type)).toEqual(['ConversationStarted', 'SpeechFailed']);
    expect(events[1]!.data).toMatchObject({ code: 'stt_http_500', requestId: 'r' });
  });
});
