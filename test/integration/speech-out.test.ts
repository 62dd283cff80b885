// Speech out sentence by sentence, through `gemello serve` on real Kafka, PostgreSQL and
// Redis, against the fake OpenAI server over real HTTP: a model that streams slowly and a
// speech endpoint that answers MP3. Each sentence is spoken as soon as it is written, so the
// first audio.chunk comes before the reply; the chunks' audio is served, parses, and adds up
// to the whole reply's audio; a socket resuming mid-speech gets them all once; erasure deletes it all. A stop silences the rest: no chunk
// and no synthesis after it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { estimateDurationSec, mp3Bitrate } from '../../models/audio-format.ts';
import { startServeWithFakeModel } from '../support/processes.ts';
import type { FakeOpenAI } from '../support/fake-openai.ts';
import type { Gemello } from '../support/processes.ts';
import { connect } from '../support/ws-client.ts';
import type { Frame } from '../support/ws-client.ts';

const twin = { type: 'prompt', digitalTwinId: 'warren-buffett-001', digitalTwinName: 'Warren Buffett' };
const SAID = 'Price is what you pay. Value is what you get. Be fearful when others are greedy, and greedy when others are fearful. Time is the friend of the wonderful business.';
let fake: FakeOpenAI;
let gemello: Gemello;
let url = '';
let http = '';

beforeAll(async () => {
  const s = await startServeWithFakeModel('so', { GEMELLO_SPEECH: 'on', GEMELLO_MODEL_RETRIES: '0' });
  ({ fake, gemello } = s);
  url = `ws://127.0.0.1:${s.port}/ws`;
  http = `http://127.0.0.1:${s.port}`;
}, 120_000);
afterAll(async () => {
  await gemello?.kill();
  await fake?.close();
});

const chunksOf = (frames: Frame[]) => frames.filter((f) => f.type === 'audio.chunk');

describe('speech out, sentence by sentence', () => {
  it('sends each sentence\'s audio while the reply streams: the first before the reply, in order, adding up to the whole reply\'s audio', async () => {
    fake.setTokenDelay(40);
    fake.setReplyText(SAID);
    const c = await connect(url);
    c.send({ ...twin, prompt: 'teach me', stream: true });
    const first = await c.next((f) => f.type === 'audio.chunk', 20_000);
    // The model is still writing when the first sentence can be played.
    expect(fake.streaming).toBeGreaterThan(0);
    // A second socket that resumes now gets the chunks so far, then the rest live.
    const b = await connect(url);
    b.send({ type: 'resume', conversationId: first.conversationId, afterSeq: 0 });
    const reply = await c.next((f) => f.type === 'reply', 20_000);
    const whole = await c.next((f) => f.type === 'audio' || f.type === 'audio.failed', 20_000);
    await b.next((f) => f.type === 'audio', 20_000);
    expect(chunksOf(b.frames).map((f) => [f.index, f.audioUrl])).toEqual(chunksOf(c.frames).map((f) => [f.index, f.audioUrl]));
    b.close();
    expect(whole.type).toBe('audio');
    expect(c.frames.indexOf(first)).toBeLessThan(c.frames.indexOf(reply));
    const chunks = chunksOf(c.frames);
    expect(chunks.map((f) => f.index)).toEqual([0, 1, 2, 3]);
    expect(chunks.map((f) => f.text)).toEqual(['Price is what you pay.', 'Value is what you get.', 'Be fearful when others are greedy, and greedy when others are fearful.', 'Time is the friend of the wonderful business.']);
    for (const f of chunks) expect(String(reply.reply).slice(f.offset as number)).toMatch(new RegExp(`^${String(f.text).replace(/[.?*+()]/g, '\\$&')}`));
    expect(chunks.at(-1)!.last).toBe(true);
    expect(c.frames.indexOf(whole)).toBeGreaterThan(c.frames.indexOf(chunks.at(-1)!));
    expect(chunks[0]).toMatchObject({ conversationId: reply.conversationId, promptSeq: (reply.seq as number) - 1, format: 'mp3' });

    // Each chunk is served as MP3 whose frames say how long it plays; together they are the whole reply's audio.
    let sum = 0;
    for (const f of chunks) {
      const res = await fetch(`${http}${f.audioUrl}`);
      expect(res.headers.get('content-type')).toBe('audio/mpeg');
      const bytes = new Uint8Array(await res.arrayBuffer());
      expect(mp3Bitrate(bytes)?.kbps).toBe(128);
      expect(estimateDurationSec(bytes, 'mp3')).toBeCloseTo(f.durationSec as number, 3);
      sum += f.durationSec as number;
    }
    expect(whole.durationSec as number).toBeCloseTo(sum, 3);
    const all = new Uint8Array(await (await fetch(`${http}${whole.audioUrl}`)).arrayBuffer());
    expect(estimateDurationSec(all, 'mp3')).toBeCloseTo(sum, 3);
    // Synthesised once: one speech request per sentence, none for the whole reply.
    expect(fake.speechRequests.filter((r) => SAID.includes(r.input)).map((r) => r.input)).toEqual(chunks.map((f) => f.text));

    // A seed client asks for nothing but the reply; a typed client that does not stream gets the one file.
    fake.setReplyText(null); // another text: none of its audio is shared with this conversation
    const seedClient = await connect(url);
    seedClient.send({ digitalTwinId: 'warren-buffett-001', prompt: 'teach me again' });
    await seedClient.next((f) => f.type === 'reply', 20_000);
    await new Promise((r) => setTimeout(r, 300));
    expect(seedClient.frames.map((f) => f.type)).toEqual(['reply']);
    seedClient.close();

    // Erasing the conversation deletes its sentences' audio too, not only the whole reply's.
    expect((await fetch(`${http}/api/conversations/${reply.conversationId}`, { method: 'DELETE' })).status).toBe(200);
    for (const f of [...chunks, whole]) await expect.poll(async () => (await fetch(`${http}${f.audioUrl}`)).status, { timeout: 10_000 }).toBe(404);
    c.close();
    fake.setTokenDelay(0);
  });

  it('stops speaking when the user talks over it: no audio.chunk and no synthesis after reply.stopped', async () => {
    fake.setTokenDelay(60);
    fake.setReplyText('One two three four. Five six seven eight. Nine ten eleven twelve. Thirteen fourteen fifteen. Sixteen seventeen eighteen. Nineteen twenty and more.');
    const c = await connect(url);
    c.send({ ...twin, prompt: 'count', stream: true });
    const first = await c.next((f) => f.type === 'audio.chunk', 20_000);
    c.send({ type: 'stop', conversationId: first.conversationId, heardChars: 10 });
    const stopped = await c.next((f) => f.type === 'reply.stopped', 10_000);
    const spoken = fake.speechRequests.length;
    const chunks = chunksOf(c.frames).length;
    await new Promise((r) => setTimeout(r, 1_000)); // the model would have written two more sentences by now
    expect(chunksOf(c.frames).length).toBe(chunks);
    expect(fake.speechRequests.length).toBe(spoken);
    expect(c.frames.indexOf(stopped)).toBe(c.frames.length - 1); // nothing after it: no reply, no audio
    expect(stopped).toMatchObject({ heardChars: 10, promptSeq: first.promptSeq });
    c.close();
    fake.setTokenDelay(0);
    fake.setReplyText(null);
  });
});
