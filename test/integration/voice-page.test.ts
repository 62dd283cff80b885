// The chat page's microphone, in headless Chromium with a fake microphone fed from an
// espeak-ng WAV: hold Talk, speak; the utterance reaches the speech-to-text route of the fake
// OpenAI server (real HTTP, a fixed transcript), the transcript is shown, the reply streams
// in and is played sentence by sentence from its audio.chunk frames (espeak-ng, real WAV);
// pressing Talk again while it speaks stops it with what was heard, and no chunk of it plays
// after that. Embedded backends (file log, PGlite, in-process streams).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeOpenAI } from '../support/fake-openai.ts';
import type { FakeOpenAI } from '../support/fake-openai.ts';
import { fakeModelEnv, freePort, startGemello } from '../support/processes.ts';
import type { Gemello } from '../support/processes.ts';

const CHROMIUM = '/usr/bin/chromium';
const REPLY = 'A moat is what keeps competitors out. It protects the castle. The wider the moat, the better the business. Look for moats that widen every year. Price is what you pay, value is what you get. Be fearful when others are greedy, and greedy when others are fearful. Time is the friend of the wonderful business and the enemy of the mediocre one.';
const dir = mkdtempSync(join(tmpdir(), 'gemello-voice-page-'));
const wav = join(dir, 'utterance.wav');
let fake: FakeOpenAI;
let proc: Gemello | null = null;
let browser: Browser | null = null;
let port = 0;

beforeAll(async () => {
  execFileSync('espeak-ng', ['-v', 'en', '-w', wav, 'What is a moat?']);
  fake = await startFakeOpenAI();
  fake.setTranscript('What is a moat?');
  port = await freePort();
  proc = await startGemello(['serve'], { GEMELLO_DATA_DIR: join(dir, 'data'), KAFKA_BROKERS: '', DATABASE_URL: '', REDIS_URL: '', PORT: String(port), ...fakeModelEnv(fake), GEMELLO_SPEECH: 'espeak' });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream', `--use-file-for-fake-audio-capture=${wav}`, '--autoplay-policy=no-user-gesture-required'],
  });
}, 120_000);

afterAll(async () => {
  await browser?.close().catch(() => {});
  await proc?.kill();
  await fake?.close();
  rmSync(dir, { recursive: true, force: true });
});

type Frame = { type?: string; promptSeq?: number; heardChars?: number; [k: string]: unknown };

describe('the page\'s microphone', () => {
  it('speaks, shows the transcript, plays the reply chunk by chunk, and stops when talked over', async () => {
    const page = await browser!.newPage();
    const sent: Frame[] = [];
    const got: Frame[] = [];
    let binary = 0;
    page.on('websocket', (ws) => {
      ws.on('framesent', (f) => (typeof f.payload === 'string' ? sent.push(JSON.parse(f.payload)) : binary++));
      ws.on('framereceived', (f) => typeof f.payload === 'string' && got.push(JSON.parse(f.payload)));
    });
    const errors: string[] = [];
    page.on('pageerror', (err) => errors.push(err.message));
    await page.goto(`http://127.0.0.1:${port}/`);
    await expect.poll(() => page.getByRole('status', { name: 'Connection' }).textContent(), { timeout: 15_000 }).toBe('connected');
    await page.getByRole('combobox', { name: 'Digital twin' }).selectOption({ label: 'Warren Buffett' });
    const talk = page.getByRole('button', { name: 'Hold to talk' });
    const voice = page.getByRole('status', { name: 'Voice' });
    const log = page.getByRole('log', { name: 'Chat with Warren Buffett' });
    fake.setTokenDelay(80); // ≈ 5 s of streaming: the talk-over comes while the model still writes
    fake.setReplyText(REPLY);

    // Hold to talk for a second and a half.
    await talk.hover();
    await page.mouse.down();
    await expect.poll(() => voice.textContent()).toBe('listening…');
    await page.waitForTimeout(1_500);
    await page.mouse.up();
    await log.getByText('What is a moat?', { exact: true }).waitFor({ timeout: 15_000 });
    expect(sent.find((f) => f.type === 'audio.start')).toMatchObject({ digitalTwinId: 'warren-buffett-001', stream: true });
    expect(binary).toBeGreaterThan(0);
    expect(fake.transcriptions.at(-1)!.bytes.byteLength).toBeGreaterThan(1_000); // the microphone's audio reached speech to text

    // The reply is spoken as it streams: a chunk plays while the model still writes.
    await expect.poll(async () => Number(await voice.getAttribute('data-played')), { timeout: 20_000 }).toBeGreaterThan(0);
    expect(got.some((f) => f.type === 'reply')).toBe(false);
    await expect.poll(() => voice.textContent(), { timeout: 5_000 }).toMatch(/^speaking/);
    await page.waitForTimeout(700); // hear some of it

    // Talk over it: the reply stops with what was played, and nothing more of it is played.
    fake.setTranscript('Thank you.');
    await page.mouse.down();
    const stop = await expect.poll(() => sent.find((f) => f.type === 'stop'), { timeout: 5_000 }).toBeTruthy().then(() => sent.find((f) => f.type === 'stop')!);
    expect(stop.heardChars).toBeGreaterThan(0);
    expect(stop.heardChars).toBeLessThan(REPLY.length);
    await log.getByText(/^stopped after \d+ characters$/).waitFor({ timeout: 15_000 });
    const stopped = got.find((f) => f.type === 'reply.stopped')!;
    expect(stopped.heardChars).toBe(stop.heardChars);
    expect(await voice.textContent()).toBe('listening…');
    const playedAtStop = Number(await voice.getAttribute('data-played'));
    await page.waitForTimeout(500);
    await page.mouse.up();
    await log.getByText('Thank you.', { exact: true }).waitFor({ timeout: 15_000 });
    // No chunk of the stopped reply came after reply.stopped, and none was played.
    expect(got.slice(got.indexOf(stopped)).filter((f) => f.type === 'audio.chunk' && f.promptSeq === stopped.promptSeq)).toEqual([]);
    expect(Number(await voice.getAttribute('data-played'))).toBeGreaterThanOrEqual(playedAtStop);
    expect(errors).toEqual([]);
    await page.close();
  });
});
