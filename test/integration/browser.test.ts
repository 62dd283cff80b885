// The chat page at `/` driven in headless Chromium (Debian's `chromium`, playwright-core):
// pick a twin, type a prompt, see the reply, its audio and the conversation id; after the
// server restarts, the page reconnects, sends `resume` and goes on in the same
// conversation. Replies stream in; Stop cancels one; a reload mid-reply shows the rest. The
// seed's example client, run in the page, prints only replies. A WebSocket upgrade to `/`
// still speaks the protocol.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeOpenAI } from '../support/fake-openai.ts';
import { fakeModelEnv, freePort, startGemello } from '../support/processes.ts';
import type { Gemello } from '../support/processes.ts';
import { connect } from '../support/ws-client.ts';

const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const dir = mkdtempSync(join(tmpdir(), 'gemello-browser-'));
let port = 0;
let env: Record<string, string> = {};
let proc: Gemello | null = null;
let browser: Browser | null = null;

beforeAll(async () => {
  port = await freePort();
  env = { GEMELLO_DATA_DIR: dir, KAFKA_BROKERS: '', DATABASE_URL: '', REDIS_URL: '', OPENAI_API_KEY: '', PORT: String(port) };
  proc = await startGemello(['serve'], env);
});

afterAll(async () => {
  await browser?.close().catch(() => {});
  await proc?.kill();
  rmSync(dir, { recursive: true, force: true });
});

/** Opens the page in Chromium (launched once), picks the seed's twin and sends `prompt`; the frames it sends are recorded. */
async function chat(at: number, prompt: string) {
  browser ??= await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
  const page = await browser.newPage({ viewport: { width: 900, height: 640 } });
  const sent: string[] = [];
  page.on('websocket', (ws) => ws.on('framesent', (f) => sent.push(String(f.payload))));
  const pageErrors: string[] = [];
  page.on('pageerror', (err) => pageErrors.push(err.message));
  await page.goto(`http://127.0.0.1:${at}/`);
  await expect.poll(() => page.getByRole('status', { name: 'Connection' }).textContent(), { timeout: 15_000 }).toBe('connected'); // (the twins load first)
  await page.getByRole('combobox', { name: 'Digital twin' }).selectOption({ label: 'Warren Buffett' });
  await page.getByRole('textbox', { name: 'Message' }).fill(prompt);
  await page.getByRole('button', { name: 'Send' }).click();
  return { page, sent, pageErrors, log: page.getByRole('log', { name: 'Chat with Warren Buffett' }) };
}

describe('the chat page', () => {
  it('still speaks WebSocket at / for a client that upgrades', async () => {
    const client = await connect(`ws://127.0.0.1:${port}/`);
    client.send({ digitalTwinId: 'warren-buffett-001', digitalTwinName: 'Warren Buffett', prompt: 'Hello' });
    const reply = await client.next((f) => f.type === 'reply', 30_000);
    expect(String(reply.reply)).toMatch(/^\[offline\]/);
    client.close();
  });

  it("runs the seed's example client unchanged: it prints only replies, never `undefined`", async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`Chromium is not installed at ${CHROMIUM} (apt-get install -y chromium; .ci/run does).`);
    browser ??= await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
    const page = await browser.newPage();
    const lines: string[] = [];
    page.on('console', (m) => lines.push(m.text()));
    // The seed's client: send the seed frame, print every frame it gets as a reply.
    await page.setContent(`<script>
      const ws = new WebSocket('ws://127.0.0.1:${port}/ws');
      ws.onopen = () => ws.send(JSON.stringify({ digitalTwinId: 'warren-buffett-001', digitalTwinName: 'Warren Buffett', prompt: 'What is a moat?' }));
      ws.onmessage = (e) => { const response = JSON.parse(e.data); console.log(response.digitalTwinName + ' (' + response.digitalTwinId + '): ' + response.reply); };
    </script>`);
    // A typed client asks the same: once its audio (or why there is none) came, the seed client's would have too.
    const typed = await connect(`ws://127.0.0.1:${port}/ws`);
    typed.send({ type: 'prompt', digitalTwinId: 'warren-buffett-001', prompt: 'What is a moat?' });
    await typed.next((f) => f.type === 'audio' || f.type === 'audio.failed', 30_000);
    await expect.poll(() => lines.length, { timeout: 30_000 }).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 300));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^Warren Buffett \(warren-buffett-001\): \[offline\]/);
    expect(lines.join('\n')).not.toContain('undefined');
    typed.close();
    await page.close();
  }, 60_000);

  it('chats with a twin in headless Chromium, and goes on after the server restarts', async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(`Chromium is not installed at ${CHROMIUM}: this test drives Debian's chromium. Install it with \`apt-get install -y chromium\` (.ci/run does).`);
    }
    const html = await fetch(`http://127.0.0.1:${port}/`, { headers: { accept: 'text/html' } });
    expect(html.status).toBe(200);
    expect(html.headers.get('content-type')).toMatch(/^text\/html/);

    const { page, sent, pageErrors, log } = await chat(port, 'What is a moat?');
    await log.getByText('[offline]').first().waitFor({ timeout: 30_000 });
    expect(await log.getByText('What is a moat?', { exact: true }).count()).toBe(1);
    const conversationId = (await page.getByLabel('Conversation id', { exact: true }).textContent())!.trim();
    expect(conversationId).toMatch(UUID);
    expect(await page.getByLabel('Trace id', { exact: true }).textContent()).toBe('—');

    // Speech: espeak-ng (installed by CI) gives an <audio> with controls; without it, a note says why not.
    if (/speech: espeak-ng/.test(proc!.output())) {
      const audio = page.getByLabel('Spoken reply from Warren Buffett').first();
      await audio.waitFor({ state: 'attached', timeout: 30_000 });
      expect(await audio.getAttribute('controls')).not.toBeNull();
      const src = await audio.evaluate((el) => (el as HTMLAudioElement).src);
      const bytes = await fetch(src);
      expect(bytes.status).toBe(200);
      expect(bytes.headers.get('content-type')).toMatch(/^audio\//);
    } else {
      await log.getByText('no audio:').first().waitFor({ timeout: 30_000 });
    }
    await page.screenshot({ path: '/tmp/gemello-page.png' });

    // The server goes away and comes back on the same port and data directory: the page
    // reconnects, resumes after the last seq it saw, and the conversation goes on.
    await proc!.kill('SIGTERM');
    await expect.poll(() => page.getByRole('status', { name: 'Connection' }).textContent()).toMatch(/^disconnected/);
    proc = await startGemello(['serve'], env);
    await expect.poll(() => page.getByRole('status', { name: 'Connection' }).textContent(), { timeout: 20_000 }).toBe('connected');
    await expect.poll(() => sent.map((s) => JSON.parse(s)).find((f) => f.type === 'resume')).toMatchObject({ type: 'resume', conversationId, afterSeq: expect.any(Number) });

    await page.getByRole('textbox', { name: 'Message' }).fill('Tell me more');
    await page.getByRole('button', { name: 'Send' }).click();
    await expect.poll(() => log.getByText('[offline]').count(), { timeout: 30_000 }).toBe(2);
    expect(await page.getByLabel('Conversation id', { exact: true }).textContent()).toBe(conversationId);
    const prompts = sent.map((s) => JSON.parse(s)).filter((f) => f.type === 'prompt');
    expect(prompts.at(-1)).toMatchObject({ digitalTwinId: 'warren-buffett-001', prompt: 'Tell me more', conversationId });
    expect(pageErrors).toEqual([]);
  }, 120_000);

  it('shows what the model proposed with a Confirm button; streams a reply, stops one, and shows the rest of one after a reload', async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`Chromium is not installed at ${CHROMIUM} (apt-get install -y chromium; .ci/run does).`);
    const fake = await startFakeOpenAI();
    const own = mkdtempSync(join(tmpdir(), 'gemello-browser-'));
    const ownPort = await freePort();
    const app = await startGemello(['serve'], { GEMELLO_DATA_DIR: own, KAFKA_BROKERS: '', DATABASE_URL: '', REDIS_URL: '', PORT: String(ownPort), ...fakeModelEnv(fake) });
    try {
      const { page, sent, log } = await chat(ownPort, 'I am name="Ann Lee"');
      await log.getByText('proposed: name: Ann Lee').waitFor({ timeout: 30_000 });
      await log.getByRole('button', { name: 'Confirm' }).click();
      await log.getByText('confirmed: name: Ann Lee').waitFor({ timeout: 30_000 });
      const conversationId = (await page.getByLabel('Conversation id', { exact: true }).textContent())!.trim();
      expect(sent.map((f) => JSON.parse(f)).filter((f) => f.type === 'confirm')).toEqual([{ type: 'confirm', conversationId, proposalSeq: expect.any(Number) }]);
      expect(await log.getByRole('button', { name: 'Confirm' }).isDisabled()).toBe(true);
      const state = await (await fetch(`http://127.0.0.1:${ownPort}/api/conversations/${conversationId}`)).json();
      expect(state.confirmedData).toEqual({ name: 'Ann Lee' });

      // Streaming: the model writes slowly; the text shows as it comes and Stop cancels it.
      fake.setTokenDelay(40);
      const long = 'Rule number one is never lose money and rule number two is never forget rule number one, said the twin slowly and at some length.';
      fake.setReplyText(long);
      const aborted = fake.aborted;
      const say = async (text: string) => {
        await page.getByRole('textbox', { name: 'Message' }).fill(text);
        await page.getByRole('button', { name: 'Send' }).click();
      };
      await say('Tell me the rules');
      const streaming = log.locator('.twin.streaming');
      await expect.poll(async () => ((await streaming.textContent()) ?? '').length, { timeout: 15_000 }).toBeGreaterThan('Warren Buffett'.length + 8);
      await page.getByRole('button', { name: 'Stop' }).click();
      await log.getByText(/^stopped after \d+ characters$/).waitFor({ timeout: 15_000 });
      await expect.poll(() => fake.aborted, { timeout: 5_000 }).toBe(aborted + 1);
      const stop = sent.map((f) => JSON.parse(f)).find((f) => f.type === 'stop');
      expect(stop).toMatchObject({ type: 'stop', conversationId, heardChars: expect.any(Number) });
      expect(await log.getByText(long, { exact: true }).count()).toBe(0);

      // A reload mid-reply: the page resumes the conversation and shows the whole reply.
      await say('Once more, please');
      await expect.poll(async () => ((await streaming.textContent()) ?? '').length, { timeout: 15_000 }).toBeGreaterThan('Warren Buffett'.length + 8);
      await page.reload();
      const again = page.getByRole('log', { name: 'Chat with Warren Buffett' });
      await again.getByText(long, { exact: true }).waitFor({ timeout: 20_000 });
      expect(await again.getByText('Once more, please', { exact: true }).count()).toBe(1);
      expect(await page.getByLabel('Conversation id', { exact: true }).textContent()).toBe(conversationId);
    } finally {
      await app.kill();
      await fake.close();
      rmSync(own, { recursive: true, force: true });
    }
  }, 120_000);
});
