// Conversations under traffic, for the tests that break something while clients talk: one
// socket per conversation, each opened with a first prompt; prompts sent one after another on
// each until stopped, with what came back for each; and what the clients and the log must
// show afterwards.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { readConversation } from '../../cli/read-conversation.ts';
import type { LoggedEvent } from '../../events/schemas.ts';
import type { EventLog } from '../../log/port.ts';
import { explainDirtyLogs } from './log-forensics.ts';
import type { Logged } from './log-forensics.ts';
import { connect } from './ws-client.ts';
import type { Frame } from './ws-client.ts';

export type Client = Awaited<ReturnType<typeof connect>>;

/**
 * `count` sockets to `url`, each starting a conversation of its own with `seed` and the prompt
 * 'hello' (requestId r0), one after another; waits on each for the frame `answered` picks
 * (at most `ms`, else the client's default). Its conversationId is the conversation's.
 */
export async function openConversations(url: string, count: number, seed: Record<string, unknown>, answered: (f: Frame) => boolean, ms?: number): Promise<{ clients: Client[]; conversations: string[] }> {
  const clients = await Promise.all(Array.from({ length: count }, () => connect(url)));
  const conversations: string[] = [];
  for (const c of clients) {
    c.send({ ...seed, prompt: 'hello', requestId: 'r0' });
    conversations.push((await c.next(answered, ms)).conversationId as string);
  }
  return { clients, conversations };
}

/** What became of prompt `n` sent at `sentAt`: its reply, an `unavailable` error, another frame, or nothing within 10 s; `at` when that was known. */
export type Outcome = { n: number; sentAt: number; at: number; kind: 'reply' | 'unavailable' | 'other' | 'silence'; frame?: Frame };

/**
 * On each client, prompts p1, p2… (requestIds r1, r2…) to its conversation, each once the last
 * was answered or 10 s went by; after anything but a reply the client waits 200 ms (it backs off
 * a little). `stop()` ends the loops once each prompt under way is answered.
 */
export function promptsUntilStopped(clients: Client[], conversations: string[], seed: Record<string, unknown>): { outcomes: Outcome[][]; stop(): Promise<void> } {
  const outcomes: Outcome[][] = clients.map(() => []);
  let traffic = true;
  const loops = clients.map(async (c, i) => {
    for (let n = 1; traffic; n++) {
      const sentAt = performance.now();
      c.send({ ...seed, conversationId: conversations[i], prompt: `p${n}`, requestId: `r${n}` });
      try {
        const f = await c.next((x) => (x.type === 'reply' || x.type === 'error') && x.requestId === `r${n}`, 10_000);
        const kind = f.type === 'reply' ? 'reply' : f.code === 'unavailable' ? 'unavailable' : 'other';
        outcomes[i]!.push({ n, sentAt, at: performance.now(), kind, frame: f });
        if (kind !== 'reply') await new Promise((r) => setTimeout(r, 200));
      } catch {
        outcomes[i]!.push({ n, sentAt, at: performance.now(), kind: 'silence' });
      }
    }
  });
  return {
    outcomes,
    async stop() {
      traffic = false;
      await Promise.all(loops);
    },
  };
}

/**
 * Each conversation's log is clean (seqs 1, 2, 3…: no gap, nothing doubled), `also` holds on
 * its events, and every reply its client saw stands in it at the reply's seq.
 */
export async function expectRepliesInLog(log: EventLog, conversations: string[], outcomes: Outcome[][], also: (events: LoggedEvent[]) => void = () => {}): Promise<void> {
  for (const [i, id] of conversations.entries()) {
    const events = await readConversation(log, id);
    expect(events.map((e) => e.seq)).toEqual(events.map((_, k) => k + 1));
    also(events);
    for (const o of outcomes[i]!.filter((x) => x.kind === 'reply')) expect(events.find((e) => e.seq === o.frame!.seq)?.type).toBe('ReplyGenerated');
  }
}

/**
 * Every prompt answered exactly once: no client saw an error frame; each client's replies are
 * one per prompt, in order, each the answer to its own prompt ('hello' as r0, then p1, p2…);
 * each conversation's log is clean and holds one ReplyGenerated per prompt sent on it
 * (`sent[i]`, its first prompt included). Closes the clients. When it fails and a log is not
 * clean, the error says what the log holds there and what `hosts` logged around it.
 */
export async function expectEachPromptAnsweredOnce(clients: Client[], conversations: string[], sent: number[], log: EventLog, hosts: Record<string, Logged> = {}): Promise<void> {
  try {
    await answeredOnce(clients, conversations, sent, log);
  } catch (err) {
    // A log that is not clean is explained (each copy's offset, time, cause; the hosts' lines around it).
    const why = await explainDirtyLogs(log, conversations, hosts).catch((e) => `(explaining the log failed: ${(e as Error).message})`);
    if (why) (err as Error).message += `\n${why}`;
    // GEMELLO_TEST_LOGS_DIR: each host's whole output beside it, for what the excerpt leaves out.
    const dir = process.env.GEMELLO_TEST_LOGS_DIR;
    if (dir) {
      const stamp = new Date().toISOString().replace(/[:.]/g, '-');
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, `${stamp}-failure.txt`), `${(err as Error).message}\n`);
      for (const [name, h] of Object.entries(hosts)) writeFileSync(join(dir, `${stamp}-${name}.log`), h.output());
    }
    throw err;
  }
}

async function answeredOnce(clients: Client[], conversations: string[], sent: number[], log: EventLog): Promise<void> {
  for (const c of clients) {
    expect(c.frames.filter((f) => f.type === 'error')).toEqual([]);
    const replies = c.frames.filter((f) => f.type === 'reply');
    expect(replies.map((f) => f.requestId)).toEqual(replies.map((_, n) => `r${n}`));
    expect(replies.map((f) => f.reply)).toEqual(replies.map((_, n) => (n === 0 ? 'echo: hello' : `echo: p${n}`)));
    c.close();
  }
  for (const [i, id] of conversations.entries()) {
    const events = await readConversation(log, id);
    expect(events.map((e) => e.seq)).toEqual(events.map((_, k) => k + 1));
    expect(events.filter((e) => e.type === 'ReplyGenerated')).toHaveLength(sent[i]!);
  }
}
