// The chat page at `/` driven in headless Chromium (Debian's `chromium`, playwright-core):
// pick a twin, type a prompt, see the reply, its audio and the conversation id; after the
// server restarts, the page reconnects, sends `resume` and goes on in the same
// conversation. A WebSocket upgrade to `/` still speaks the protocol.
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
  await expect.poll(() => page.getByRole('status', { name: 'Connection' }).textContent()).toBe('connected');
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

  it('shows what the model proposed with a Confirm button, which confirms it', async () => {
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
    } finally {
      await app.kill();
      await fake.close();
      rmSync(own, { recursive: true, force: true });
    }
  }, 120_000);
});
