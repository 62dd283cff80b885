// Speech in through `gemello serve` on real Kafka, PostgreSQL and Redis: an Italian utterance
// made by espeak-ng is sent in binary frames, a fake OpenAI-compatible server (real HTTP)
// transcribes it, and the client gets the transcript, then the reply, as for a typed prompt.
// Limits, frames out of place and a failing transcriber each get their code, and the socket
// goes on working after every one.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findAudio, needles } from '../support/find-audio.ts';
import { conversationOnKafka } from '../support/log.ts';
import { startServeWithFakeModel } from '../support/processes.ts';
import type { FakeOpenAI } from '../support/fake-openai.ts';
import type { Gemello } from '../support/processes.ts';
import { connect, speak as speakAs } from '../support/ws-client.ts';

const twin = { digitalTwinId: 'warren-buffett-001', digitalTwinName: 'Warren Buffett' };
const SAID = 'Buongiorno, vorrei sapere come scegliere un\'azienda in cui investire.';
let fake: FakeOpenAI;
let gemello: Gemello;
let namespace = '';
let schema = '';
let url = '';
let wav: Uint8Array;

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'voice-in-'));
  execFileSync('espeak-ng', ['-v', 'it', '-w', join(dir, 'it.wav'), SAID]);
  wav = new Uint8Array(readFileSync(join(dir, 'it.wav')));
  const s = await startServeWithFakeModel('vi', { GEMELLO_STT_MODEL: 'whisper-1', GEMELLO_VOICE_MAX_SECONDS: '10', GEMELLO_VOICE_MAX_BYTES: '600000', GEMELLO_STT_RETRIES: '0' });
  ({ fake, gemello, namespace, schema } = s);
  url = `ws://127.0.0.1:${s.port}/ws`;
}, 120_000);
afterAll(async () => {
  await gemello?.kill();
  await fake?.close();
});

/** Sends bytes as an utterance of the seed twin. */
const speak = (c: Awaited<ReturnType<typeof connect>>, bytes: Uint8Array, start: Record<string, unknown>, chunk?: number) => speakAs(c, bytes, { ...twin, ...start }, chunk);

describe('speech in', () => {
  it('transcribes an Italian utterance sent in binary frames and answers it: transcript, then the reply; the log holds SpeechReceived and PromptReceived {source: voice}', async () => {
    fake.setTranscript(SAID);
    const c = await connect(url);
    const before = fake.transcriptions.length;
    speak(c, wav, { requestId: 'v1', stream: true });
    const transcript = await c.next((f) => f.type === 'transcript');
    const reply = await c.next((f) => f.type === 'reply');
    expect(transcript).toMatchObject({ text: SAID, requestId: 'v1' });
    expect(transcript.durationSec as number).toBeGreaterThan(2);
    expect(reply).toMatchObject({ conversationId: transcript.conversationId, reply: `echo: ${SAID}`, requestId: 'v1' });
    expect(c.frames.indexOf(transcript)).toBeLessThan(c.frames.indexOf(reply));
    // The streamed reply came as deltas first, as for a typed prompt with stream.
    expect(c.frames.some((f) => f.type === 'reply.delta')).toBe(true);
    // The transcriber got the whole utterance, byte for byte, with the model asked for.
    const got = fake.transcriptions.slice(before);
    expect(got).toHaveLength(1);
    expect(got[0]!.model).toBe('whisper-1');
    expect(got[0]!.contentType).toBe('audio/wav');
    expect(Buffer.from(got[0]!.bytes).equals(Buffer.from(wav))).toBe(true);
    const events = await conversationOnKafka(namespace, transcript.conversationId as string);
    const speech = events.find((e) => e.type === 'SpeechReceived');
    const prompt = events.find((e) => e.type === 'PromptReceived');
    expect(speech).toMatchObject({ seq: transcript.seq, data: { format: 'wav', audioId: transcript.audioId } });
    expect(prompt).toMatchObject({ seq: (transcript.seq as number) + 1, data: { source: 'voice' } });
    expect(events.filter((e) => e.type === 'ReplyGenerated')).toHaveLength(1);
    c.close();
  });

  it('keeps nothing of the audio by default: no copy in any Kafka topic, PostgreSQL table or Redis key', async () => {
    // The needles would find the audio stored raw, as bytea, or base64 in JSON.
    const b64 = Buffer.from(wav).toString('base64');
    expect(needles(wav).some((n) => b64.includes(n))).toBe(true);
    expect(needles(wav).some((n) => `\\x${Buffer.from(wav).toString('hex')}`.includes(n))).toBe(true);
    expect(await findAudio(wav, { namespace, schema })).toEqual([]);
  });

  it('refuses an utterance over its limits with audio_too_long, a binary frame outside an utterance with binary_frame, and the socket goes on', async () => {
    const c = await connect(url);
    c.ws.send(Buffer.from([1, 2, 3]));
    expect(await c.next((f) => f.type === 'error')).toMatchObject({ code: 'binary_frame' });
    // Longer than 10 s: two copies of the utterance's samples behind one header saying so.
    const long = new Uint8Array(44 + 2 * 22050 * 2 * 6);
    long.set(wav.subarray(0, 44));
    new DataView(long.buffer).setUint32(40, long.byteLength - 44, true);
    speak(c, long, { requestId: 'long' });
    expect(await c.next((f) => f.type === 'error')).toMatchObject({ code: 'audio_too_long', requestId: 'long' });
    // Larger than 600 kB in a container whose length is not read as it comes.
    speak(c, new Uint8Array(700_000), { format: 'webm', requestId: 'big' }, 65_536);
    const big = await c.next((f) => f.type === 'error');
    expect(big).toMatchObject({ code: 'audio_too_long', requestId: 'big' });
    expect(big.error).toMatch(/600000 bytes/);
    speak(c, wav, { format: 'speex' });
    expect(await c.next((f) => f.type === 'error')).toMatchObject({ code: 'audio_format' });
    // No other error came for the refused utterances' frames, and the socket still takes prompts and speech.
    c.send({ type: 'prompt', ...twin, prompt: 'still there?' });
    expect(await c.next((f) => f.type === 'reply' || f.type === 'error')).toMatchObject({ type: 'reply', reply: 'echo: still there?' });
    fake.setTranscript('e adesso?');
    speak(c, wav, {});
    expect(await c.next((f) => f.type === 'transcript' || f.type === 'error')).toMatchObject({ type: 'transcript', text: 'e adesso?' });
    expect(c.frames.filter((f) => f.type === 'error')).toHaveLength(4);
    c.close();
  });

  it('records a failed transcription as SpeechFailed and tells the client stt_failed; the conversation goes on', async () => {
    const c = await connect(url);
    fake.setTranscriptMode('error500');
    speak(c, wav, { requestId: 'bad' });
    const failed = await c.next((f) => f.type === 'error');
    expect(failed).toMatchObject({ code: 'stt_failed', reason: 'stt_http_500', requestId: 'bad' });
    fake.setTranscriptMode('ok');
    fake.setTranscript('riprovo');
    speak(c, wav, { conversationId: failed.conversationId, requestId: 'again' });
    expect(await c.next((f) => f.type === 'reply')).toMatchObject({ conversationId: failed.conversationId, reply: 'echo: riprovo', requestId: 'again' });
    const events = await conversationOnKafka(namespace, failed.conversationId as string);
    expect(events.map((e) => e.type)).toEqual(['ConversationStarted', 'SpeechFailed', 'SpeechReceived', 'PromptReceived', 'ReplyGenerated']);
    c.close();
  });
});
