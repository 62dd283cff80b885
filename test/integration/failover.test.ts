// Two actor hosts as real processes in one consumer group on real Kafka: SIGKILL the one
// that owns a conversation and the other takes its partition over without losing or
// repeating anything, also when it dies while a reply streams.
import { describe, expect, it } from 'vitest';
import { readConversation } from '../../cli/read-conversation.ts';
import { hostFixture } from '../support/host-processes.ts';
import type { EventLog } from '../../log/port.ts';
import { explainDirtyLogs } from '../support/log-forensics.ts';
import type { Logged } from '../support/log-forensics.ts';
import { failoverCluster, firstReply } from '../support/two-hosts.ts';

const seed = { digitalTwinId: 'warren-buffett-001', digitalTwinName: 'Warren Buffett' };
const PARTITIONS = 4;
const fx = hostFixture('each');

/** No gap, no duplicate; when there is one, the message says what the log holds there and what the hosts logged around it. */
async function assertCleanLog(events: { seq: number }[], log: EventLog, conversationId: string, hosts: Record<string, Logged>) {
  const seqs = events.map((e) => e.seq);
  const clean = seqs.every((s, i) => s === i + 1);
  expect(seqs, clean ? undefined : (await explainDirtyLogs(log, [conversationId], hosts)) ?? undefined).toEqual(seqs.map((_, i) => i + 1));
}

describe('failover between two actor hosts', () => {
  it('goes on after the owner of the conversation is SIGKILLed mid-conversation', async () => {
    const { url, a, b, log } = await failoverCluster('fo', PARTITIONS, fx.fake, fx.procs);
    try {
      const { client, conversationId, p, owner, other } = await firstReply(url, a, b, PARTITIONS, { ...seed, prompt: 'one' });

      client.send({ ...seed, prompt: 'two' });
      await client.next((f) => f.type === 'reply');
      await owner.kill('SIGKILL');
      const killedAt = performance.now();
      const killedWall = new Date().toISOString();
      client.send({ ...seed, prompt: 'three' });
      const third = await client.next((f) => f.type === 'reply', 45_000);
      const failoverMs = performance.now() - killedAt;
      expect(third.reply).toBe('echo: three');
      // The survivor reports what it owns over IPC; that report may come just after the reply.
      await other.waitFor(() => other.owned().includes(p), 'the survivor to report the partition as its own', 10_000);
      client.send({ ...seed, prompt: 'four' });
      expect((await client.next((f) => f.type === 'reply')).reply).toBe('echo: four');
      client.close();

      const events = await readConversation(log, conversationId);
      await assertCleanLog(events, log, conversationId, { a, b });
      expect(events.filter((e) => e.type === 'ReplyGenerated')).toHaveLength(4);
      console.log(`SIGKILL at ${killedWall}\n${other.output().split('\n').filter((l) => l >= killedWall && /removing|removed|assigned|partition \d+: read|kafka/.test(l)).join('\n')}`);
      console.log(`takeover: SIGKILL -> next reply served by the other host in ${failoverMs.toFixed(0)} ms (${process.env.GEMELLO_KAFKA_CLIENT || 'default'} client; lease ${process.env.GEMELLO_LEASE_MS || 400} ms, session timeout 6000 ms)`);
    } finally {
      await log.close();
    }
  }, 120_000);

  it('finishes a prompt whose host died mid-stream (after PromptReceived, before the model finished), exactly once: reply.restart, then deltas from 0', async () => {
    const { url, a, b, log } = await failoverCluster('fo', PARTITIONS, fx.fake, fx.procs);
    try {
      const { client, conversationId, p, owner, other } = await firstReply(url, a, b, PARTITIONS, { ...seed, prompt: 'warm up' });

      // The model writes slowly: the owner is streaming when it dies.
      fx.fake.setTokenDelay(60);
      const words = 'the interrupted one goes on for a good many words so that it is still streaming';
      client.send({ ...seed, type: 'prompt', prompt: words, requestId: 'x', stream: true });
      const first = await client.next((f) => f.type === 'reply.delta', 15_000);
      const before = await readConversation(log, conversationId);
      expect(before[before.length - 1]!.type).toBe('PromptReceived');

      await owner.kill('SIGKILL');
      fx.fake.setTokenDelay(5);
      const restart = await client.next((f) => f.type === 'reply.restart', 45_000);
      expect(restart).toMatchObject({ conversationId, promptSeq: first.promptSeq });
      const reply = await client.next((f) => f.type === 'reply', 45_000);
      expect(reply).toMatchObject({ reply: `echo: ${words}`, requestId: 'x', conversationId });
      // After the restart the deltas start again at 0 and add up to the reply.
      let text = '';
      for (const f of client.frames.slice(client.frames.indexOf(restart))) {
        if (f.type !== 'reply.delta') continue;
        expect(f.offset).toBe(text.length);
        text += f.text as string;
      }
      expect(text).toBe(reply.reply);
      // The survivor reports what it owns over IPC; that report may come just after the reply.
      await other.waitFor(() => other.owned().includes(p), 'the survivor to report the partition as its own', 10_000);
      client.close();

      const events = await readConversation(log, conversationId);
      await assertCleanLog(events, log, conversationId, { a, b });
      const promptSeq = before[before.length - 1]!.seq;
      const answers = events.filter((e) => e.type === 'ReplyGenerated' && (e.data as { promptSeq: number }).promptSeq === promptSeq);
      expect(answers).toHaveLength(1);
    } finally {
      await log.close();
    }
  }, 120_000);

  it('a host frozen (SIGSTOP) until its partitions move, then resumed (SIGCONT), writes nothing more: the log stays clean', async () => {
    const { url, a, b, log } = await failoverCluster('fo', PARTITIONS, fx.fake, fx.procs);
    try {
      const { client, conversationId, p, owner, other } = await firstReply(url, a, b, PARTITIONS, { ...seed, prompt: 'before the freeze' });
      // The owner asks the model, which answers only after the owner is frozen: resumed, the
      // zombie holds an answer to record for a partition it no longer owns.
      fx.fake.setLatency(2_500);
      const asked = fx.fake.requests.length;
      client.send({ ...seed, prompt: 'while frozen', requestId: 'z' });
      const deadline = Date.now() + 15_000;
      while (fx.fake.requests.length === asked && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      // The model is asked while the prompt's PromptReceived is appended: frozen only once that
      // landed, the zombie holds just the model's answer (a write already inside the Kafka client
      // when a host freezes is the gap no host-side fence closes; see the README).
      while (Date.now() < deadline && !(await readConversation(log, conversationId)).some((e) => e.type === 'PromptReceived' && e.correlationId === 'z')) await new Promise((r) => setTimeout(r, 10));
      owner.child.kill('SIGSTOP');
      const reply = await client.next((f) => f.type === 'reply', 30_000);
      expect(reply).toMatchObject({ reply: 'echo: while frozen', requestId: 'z' });
      // The survivor reports what it owns over IPC; that report may come just after the reply.
      await other.waitFor(() => other.owned().includes(p), 'the survivor to report the partition as its own', 10_000);
      fx.fake.setLatency(0);
      await new Promise((r) => setTimeout(r, 3_000)); // the zombie's model answer is waiting for it
      owner.child.kill('SIGCONT');
      await owner.waitFor(() => /was frozen/.test(owner.output()), 'the resumed host to fence itself', 10_000);
      // What it learns after it was frozen (before the freeze it logged "the group settled" too).
      const sinceThaw = () => owner.output().slice(owner.output().indexOf('was frozen'));
      await owner.waitFor(() => /the group (settled again|moved on|did not answer)/.test(sinceThaw()), 'the resumed host to learn that the group moved on', 15_000);
      console.log(owner.output().split('\n').filter((l) => /frozen|group|dropped|rejoin/.test(l)).join('\n'));
      // The conversation goes on, served by whoever owns it once the group has settled again.
      client.send({ ...seed, prompt: 'after the thaw' });
      const thawed = await client.next((f) => f.type === 'reply', 30_000).catch((err: Error) => {
        throw new Error(`${err.message}\n--- the resumed host:\n${owner.output().slice(-6000)}\n--- the other host:\n${other.output().slice(-6000)}`);
      });
      expect(thawed.reply).toBe('echo: after the thaw');
      client.close();

      const events = await readConversation(log, conversationId);
      await assertCleanLog(events, log, conversationId, { a, b }); // every record in the log, the zombie's included: none has a seq twice
      const replies = events.filter((e) => e.type === 'ReplyGenerated');
      expect(replies).toHaveLength(3);
      expect(new Set(replies.map((e) => (e.data as { promptSeq: number }).promptSeq)).size).toBe(3);
    } finally {
      await log.close();
    }
  }, 120_000);
});
