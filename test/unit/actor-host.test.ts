// The actor host's parts, each driven alone against the embedded file log: a command goes
// through the mailbox into the log, its effect (the model's reply) is recorded after it, a
// released partition is no longer written, and an idle actor is passivated behind a checkpoint.
import { describe, expect, it } from 'vitest';
import type { ReplyModel } from '../../actors/ports.ts';
import { createTwinCatalog } from '../../actors/twins.ts';
import { createHostContext } from '../../actors/host.ts';
import { commit } from '../../actors/host/commit.ts';
import { NotOwner } from '../../actors/host/context.ts';
import type { HostContext } from '../../actors/host/context.ts';
import { handleCommands } from '../../actors/host/handle-command.ts';
import { housekeeping } from '../../actors/host/housekeeping.ts';
import { acquire, release } from '../../actors/host/partitions.ts';
import { actorFor } from '../../actors/host/activate.ts';
import { writeSnapshot } from '../../actors/host/snapshot.ts';
import { decodeEvents } from '../../events/codec.ts';
import type { LoggedEvent } from '../../events/schemas.ts';
import type { EventLog, LogRecord } from '../../log/port.ts';
import { TOPICS } from '../../log/port.ts';
import { createMemorySnapshotStore } from '../../stores/snapshots/memory.ts';
import { createMemoryReplyStreams } from '../../stores/streams/memory.ts';
import { createMetrics } from '../../telemetry/metrics.ts';
import { tempFileLogs, seedTwin, quietLogger } from '../support/temp-log.ts';

const twin = seedTwin;
const quiet = quietLogger;
const fileLog = tempFileLogs('host');

function world(reply: ReplyModel['reply'] = async () => ({ text: 'Buy wonderful businesses.', model: 'stub', tokens: { prompt: 1, completion: 1, total: 2 } }), extra: Partial<Parameters<typeof createHostContext>[0]> = {}, wrap: (log: EventLog) => EventLog = (l) => l) {
  const log: EventLog = fileLog(1);
  const snapshots = createMemorySnapshotStore();
  const ctx: HostContext = createHostContext({ log: wrap(log), snapshots, readModel: null, catalog: createTwinCatalog(), replyModel: { name: 'stub', reply }, metrics: createMetrics(), logger: quiet, idleMs: 0, ...extra });
  let offset = 0;
  const record = (value: unknown): LogRecord => ({ topic: TOPICS.commands, partition: 0, offset: offset++, key: 'c1', value: typeof value === 'string' ? value : JSON.stringify(value), headers: {}, timestamp: Date.now() });
  const prompt = (commandId: string, text: string, stream?: boolean) => record({ type: 'SubmitPrompt', commandId, conversationId: 'c1', correlationId: null, principal: null, traceparent: null, issuedAt: new Date(0).toISOString(), data: { twin, text, ...(stream === undefined ? {} : { stream }) } });
  const events = async (): Promise<LoggedEvent[]> => {
    const out: LoggedEvent[] = [];
    await log.read(TOPICS.events, 0, 0, async (records) => void out.push(...(await decodeEvents(records, null))));
    return out;
  };
  /** Until the conversation has no pending work (at most 2 s). */
  const settled = async (part: ReturnType<typeof acquire>) => {
    for (let i = 0; i < 200 && (part.actors.get('c1')?.state.pendingPrompts.length ?? 1) > 0; i++) await new Promise((r) => setTimeout(r, 10));
    await part.actors.get('c1')?.queue;
  };
  return { ctx, log, snapshots, prompt, record, events, settled };
}

describe('actor host parts on the file log', () => {
  it('appends a prompt, then records the reply its effect produced', async () => {
    const w = world();
    const part = acquire(w.ctx, 0);
    await handleCommands(w.ctx, part, [w.prompt('cmd-1', 'What is a moat?')]);
    await w.settled(part);
    const events = await w.events();
    expect(events.map((e) => e.type)).toEqual(['ConversationStarted', 'PromptReceived', 'ReplyGenerated']);
    expect(events[2]!.data).toMatchObject({ promptSeq: 2, text: 'Buy wonderful businesses.' });
    await w.log.close();
  });

  it('asks the model for a reply in one piece when nobody follows it live, and streams it otherwise (also for a command without the flag)', async () => {
    const asked: boolean[] = [];
    const streams = createMemoryReplyStreams();
    const updates: string[] = [];
    await streams.subscribe((u) => updates.push(`${u.kind}:${u.promptSeq}`));
    const w = world(async (req) => {
      asked.push(req.onText !== undefined);
      req.onText?.('Buy ');
      req.onText?.('wonderful businesses.');
      return { text: 'Buy wonderful businesses.', model: 'stub', tokens: { prompt: 1, completion: 1, total: 2 } };
    }, { streams });
    const part = acquire(w.ctx, 0);
    await handleCommands(w.ctx, part, [w.prompt('cmd-1', 'seed client', false)]);
    await w.settled(part);
    await handleCommands(w.ctx, part, [w.prompt('cmd-2', 'asked to stream', true)]);
    await w.settled(part);
    await handleCommands(w.ctx, part, [w.prompt('cmd-3', 'an older command')]);
    await w.settled(part);
    expect(asked).toEqual([false, true, true]);
    expect(updates.filter((u) => u.endsWith(':2'))).toEqual([]); // nothing of the quiet reply on the streams
    expect([...new Set(updates.filter((u) => u.endsWith(':4')))]).toEqual(['start:4', 'delta:4', 'end:4']);
    const replies = (await w.events()).filter((e) => e.type === 'ReplyGenerated');
    expect(replies.map((e) => e.data)).toMatchObject([{ promptSeq: 2, text: 'Buy wonderful businesses.' }, { promptSeq: 4 }, { promptSeq: 6 }]);
    await w.log.close();
  });

  it('records a reply again when its write failed (the log was away), without asking the model again', async () => {
    let asked = 0;
    let failures = 1;
    const w = world(async () => (asked++, { text: 'Buy wonderful businesses.', model: 'stub', tokens: { prompt: 1, completion: 1, total: 2 } }), {}, (log) => ({
      ...log,
      async append(topic, partition, records) {
        // The broker is away for the reply's write: nothing of it lands.
        if (records.some((r) => r.headers['event-type'] === 'ReplyGenerated') && failures-- > 0) throw new Error('broker away');
        return log.append(topic, partition, records);
      },
    }));
    const part = acquire(w.ctx, 0);
    await handleCommands(w.ctx, part, [w.prompt('cmd-1', 'What is a moat?')]);
    for (let i = 0; i < 300 && !(await w.events()).some((e) => e.type === 'ReplyGenerated'); i++) await new Promise((r) => setTimeout(r, 10));
    expect((await w.events()).map((e) => e.type)).toEqual(['ConversationStarted', 'PromptReceived', 'ReplyGenerated']);
    expect(asked).toBe(1);
    await w.log.close();
  });

  it('skips a command it cannot read and handles the next; a redelivered command adds nothing', async () => {
    const w = world();
    const part = acquire(w.ctx, 0);
    await handleCommands(w.ctx, part, [w.record('{not json'), w.prompt('cmd-1', 'hello')]);
    await w.settled(part);
    await handleCommands(w.ctx, part, [w.prompt('cmd-1', 'hello')]);
    await w.settled(part);
    expect((await w.events()).map((e) => e.type)).toEqual(['ConversationStarted', 'PromptReceived', 'ReplyGenerated']);
    await w.log.close();
  });

  it('writes nothing into a partition once it is released, not even a reply that comes late', async () => {
    let answer!: () => void;
    const w = world(() => new Promise((resolve) => (answer = () => resolve({ text: 'late', model: 'stub', tokens: { prompt: 0, completion: 0, total: 0 } }))));
    const part = acquire(w.ctx, 0);
    await handleCommands(w.ctx, part, [w.prompt('cmd-1', 'hello')]);
    const actor = part.actors.get('c1')!;
    release(w.ctx, [0]);
    answer();
    await new Promise((r) => setTimeout(r, 20));
    await expect(commit(w.ctx, part, actor, [{ type: 'ReplyFailed', data: { promptSeq: 2, code: 'x', reason: 'x', latencyMs: 0 } }], { causationId: null, correlationId: null, traceparent: null })).rejects.toBeInstanceOf(NotOwner);
    expect((await w.events()).map((e) => e.type)).toEqual(['ConversationStarted', 'PromptReceived']);
    await w.log.close();
  });

  it('passivates an idle actor behind its snapshot and moves the checkpoint to the end of the partition', async () => {
    const w = world();
    const part = acquire(w.ctx, 0);
    await handleCommands(w.ctx, part, [w.prompt('cmd-1', 'hello')]);
    await w.settled(part);
    await housekeeping(w.ctx);
    expect(part.actors.size).toBe(0);
    expect((await w.snapshots.get('c1'))?.seq).toBe(3);
    expect(await w.snapshots.getCheckpoint(0)).toBe(3);
    await w.log.close();
  });

  it('writes the snapshot of a quiet conversation, which stays in memory, so the checkpoint passes it before its idle time', async () => {
    const w = world(undefined, { idleMs: 3_600_000 });
    const part = acquire(w.ctx, 0);
    await handleCommands(w.ctx, part, [w.prompt('cmd-1', 'hello')]);
    await w.settled(part);
    await housekeeping(w.ctx);
    // Not quiet yet (5 s by default): its three events hold the checkpoint at 0.
    expect(await w.snapshots.getCheckpoint(0)).toBe(0);
    w.ctx.quietMs = 0;
    await housekeeping(w.ctx);
    expect(part.actors.has('c1')).toBe(true);
    expect((await w.snapshots.get('c1'))?.seq).toBe(3);
    expect(await w.snapshots.getCheckpoint(0)).toBe(3);
    await w.log.close();
  });

  it('moves the checkpoint with the oldest open work, though the next prompt always comes before the last speech is done', async () => {
    const w = world();
    const part = acquire(w.ctx, 0);
    await part.ready;
    const actor = actorFor(w.ctx, part, 'c1');
    await actor.queue;
    const none = { causationId: null, correlationId: null, traceparent: null };
    const tokens = { prompt: 1, completion: 1, total: 2 };
    await commit(w.ctx, part, actor, [{ type: 'ConversationStarted', data: { twinId: twin.id, twinName: twin.name, userId: null, metadata: {} } }], none);
    // Each turn: a prompt, its reply owing speech, the next prompt, and only then the speech.
    for (let turn = 0; turn < 50; turn++) {
      const [p] = await commit(w.ctx, part, actor, [{ type: 'PromptReceived', data: { text: `q${turn}`, requestId: null } }], none);
      if (turn > 0) await commit(w.ctx, part, actor, [{ type: 'AudioReady', data: { replySeq: actor.state.pendingAudio[0]!, audioId: 'a', format: 'wav', durationSec: 1, bytes: 1, voice: 'v' } }], none);
      const [r] = await commit(w.ctx, part, actor, [{ type: 'ReplyGenerated', data: { promptSeq: p!.seq, text: 'a', model: 'm', tokens, latencyMs: 1, audio: true } }], none);
      expect(actor.pendingFrom).toBe(r!.position.offset);
    }
    expect(actor.pendingAt.size).toBe(1);
    // A trace kept for the one reply whose speech is still owed, none for the 49 spoken: nothing piles up.
    expect(actor.state.pendingAudio).toHaveLength(1);
    expect([...actor.traces.keys()]).toEqual(actor.state.pendingAudio);
    await w.log.close();
  });

  it('writes one snapshot at a time per conversation; calls meanwhile share the next write, which has the latest state', async () => {
    const w = world();
    const puts: number[] = [];
    const put = w.snapshots.put.bind(w.snapshots);
    w.snapshots.put = async (s) => {
      puts.push(s.seq);
      await new Promise((r) => setTimeout(r, 20));
      await put(s);
    };
    const part = acquire(w.ctx, 0);
    await handleCommands(w.ctx, part, [w.prompt('cmd-1', 'hello')]);
    await w.settled(part);
    const actor = part.actors.get('c1')!;
    puts.length = 0;
    const writes = Array.from({ length: 10 }, () => writeSnapshot(w.ctx, actor));
    await Promise.all(writes);
    expect(puts).toHaveLength(2);
    expect((await w.snapshots.get('c1'))?.seq).toBe(actor.state.seq);
    await w.log.close();
  });

  it('holds at most maxActors conversations: the least recently used idle ones are passivated early', async () => {
    const w = world(undefined, { idleMs: 3_600_000, maxActors: 10 });
    const part = acquire(w.ctx, 0);
    for (let i = 0; i < 30; i++) {
      const conversationId = `c${i}`;
      await handleCommands(w.ctx, part, [w.record({ type: 'SubmitPrompt', commandId: `cmd-${i}`, conversationId, correlationId: null, principal: null, traceparent: null, issuedAt: new Date(0).toISOString(), data: { twin, text: 'hi' } })]);
    }
    for (let i = 0; i < 200 && [...part.actors.values()].some((a) => a.state.pendingPrompts.length || a.busy); i++) await new Promise((r) => setTimeout(r, 10));
    await housekeeping(w.ctx);
    expect(part.actors.size).toBeLessThanOrEqual(10);
    expect(part.actors.has('c29')).toBe(true);
    expect((await w.snapshots.get('c0'))?.seq).toBe(3);
    await w.log.close();
  });

  it('bounds the tail even when the checkpoint cannot move', async () => {
    const w = world(() => new Promise(() => {}), { tailMaxEvents: 100 });
    const part = acquire(w.ctx, 0);
    // Prompts that are never answered pin the checkpoint at the first one.
    for (let i = 0; i < 12; i++) {
      await handleCommands(w.ctx, part, Array.from({ length: 15 }, (_, k) => w.record({ type: 'SubmitPrompt', commandId: `cmd-${i}-${k}`, conversationId: `c${i}`, correlationId: null, principal: null, traceparent: null, issuedAt: new Date(0).toISOString(), data: { twin, text: 'hi' } })));
    }
    await housekeeping(w.ctx);
    expect(part.tail.size).toBeLessThanOrEqual(100);
    expect(part.checkpoint).toBe(0);
    await w.log.close();
  });
});
