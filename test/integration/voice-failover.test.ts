// The durable-work rule for a spoken prompt: the actor host that appended SpeechReceived and
// PromptReceived is SIGKILLed while the model is still thinking; the host that takes its
// partition over answers the prompt exactly once, and nothing is transcribed again (the audio
// is gone by then: the transcript in the log is all the work needs).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { readConversation } from '../../cli/read-conversation.ts';
import { hostFixture } from '../support/host-processes.ts';
import { failoverCluster, firstReply } from '../support/two-hosts.ts';

const twin = { digitalTwinId: 'warren-buffett-001', digitalTwinName: 'Warren Buffett' };
const PARTITIONS = 4;
const fx = hostFixture('all');

it('SIGKILL of the owning host after SpeechReceived: the new owner replies exactly once, without transcribing again', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'voice-fo-'));
  execFileSync('espeak-ng', ['-v', 'it', '-w', join(dir, 'it.wav'), 'Che cosa compreresti oggi?']);
  const wav = readFileSync(join(dir, 'it.wav'));
  const { url, a, b, log } = await failoverCluster('vfo', PARTITIONS, fx.fake, fx.procs);
  try {
    const { client, conversationId, p, owner, other } = await firstReply(url, a, b, PARTITIONS, { type: 'prompt', ...twin, prompt: 'warm up' });

    // The model does not answer the owner: it is still thinking when it dies.
    fx.fake.setMode('hang');
    fx.fake.setTranscript('che cosa compreresti oggi?');
    const asked = fx.fake.requests.length;
    client.send({ type: 'audio.start', ...twin, conversationId, format: 'wav', requestId: 'spoken' });
    client.ws.send(Buffer.from(wav));
    client.send({ type: 'audio.end' });
    const transcript = await client.next((f) => f.type === 'transcript');
    const deadline = Date.now() + 15_000;
    while (fx.fake.requests.length === asked && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(fx.fake.requests.length).toBeGreaterThan(asked);
    const before = await readConversation(log, conversationId);
    expect(before.slice(-2).map((e) => e.type)).toEqual(['SpeechReceived', 'PromptReceived']);

    await owner.kill('SIGKILL');
    fx.fake.setMode('ok');
    const reply = await client.next((f) => f.type === 'reply', 45_000);
    expect(reply).toMatchObject({ conversationId, reply: 'echo: che cosa compreresti oggi?', requestId: 'spoken' });
    // The survivor reports what it owns over IPC; that report may come just after the reply.
    await other.waitFor(() => other.owned().includes(p), 'the survivor to report the partition as its own', 10_000);
    client.close();

    const events = await readConversation(log, conversationId);
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    const promptSeq = (transcript.seq as number) + 1;
    expect(events.filter((e) => e.type === 'ReplyGenerated' && (e.data as { promptSeq: number }).promptSeq === promptSeq)).toHaveLength(1);
    expect(events.filter((e) => e.type === 'SpeechReceived')).toHaveLength(1);
    expect(fx.fake.transcriptions).toHaveLength(1);
  } finally {
    await log.close();
  }
}, 120_000);
