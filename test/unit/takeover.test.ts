// A host taking a partition over finds the work its last owner left owed, also when that owner
// never wrote a checkpoint for it (it died in its first second, or the snapshot store was
// flushed): the read model's coverage says what was projected, not what is still owed.
import { describe, expect, it } from 'vitest';
import type { ReplyModel, StateSource } from '../../actors/ports.ts';
import { createTwinCatalog } from '../../actors/twins.ts';
import { createHostContext } from '../../actors/host.ts';
import { handleCommands } from '../../actors/host/handle-command.ts';
import { acquire } from '../../actors/host/partitions.ts';
import { decodeEvents } from '../../events/codec.ts';
import type { LoggedEvent } from '../../events/schemas.ts';
import type { EventLog, LogRecord } from '../../log/port.ts';
import { TOPICS } from '../../log/port.ts';
import { createMemorySnapshotStore } from '../../stores/snapshots/memory.ts';
import { createMetrics } from '../../telemetry/metrics.ts';
import { tempFileLogs, seedTwin, quietLogger, sleep } from '../support/temp-log.ts';

const twin = seedTwin;
const quiet = quietLogger;
const fileLog = tempFileLogs('takeover');

const prompt = (conversationId: string, commandId: string, text: string, offset: number, traceparent: string | null = null): LogRecord => ({
  topic: TOPICS.commands, partition: 0, offset, key: conversationId, headers: {}, timestamp: Date.now(),
  value: JSON.stringify({ type: 'SubmitPrompt', commandId, conversationId, correlationId: null, principal: null, traceparent, issuedAt: new Date(0).toISOString(), data: { twin, text } }),
});
// The trace the gateway gave the prompt (with traces off, the actor's events carry it as it came).
const promptTrace = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';

async function eventsOf(log: EventLog): Promise<LoggedEvent[]> {
  const out: LoggedEvent[] = [];
  await log.read(TOPICS.events, 0, 0, async (records) => void out.push(...(await decodeEvents(records, null))));
  return out;
}

describe('taking a partition over', () => {
  it('without a checkpoint of the last owner: the owed replies are made, in their prompts\' traces, the other conversations are not woken', async () => {
    const log = fileLog(1);
    const snapshots = createMemorySnapshotStore();
    // A projector that has applied every event of the partition (and knows no state: the tiers below it are used).
    const readModel: StateSource = { stateOf: async () => null, coveredUntil: async () => (await log.endOffsets(TOPICS.events))[0]! };
    const answered: ReplyModel['reply'] = async () => ({ text: 'Buy wonderful businesses.', model: 'stub', tokens: { prompt: 1, completion: 1, total: 2 } });
    const context = (reply: ReplyModel['reply']) => createHostContext({ log, snapshots, readModel, catalog: createTwinCatalog(), replyModel: { name: 'stub', reply }, metrics: createMetrics(), logger: quiet });

    // The first owner answers one conversation, then takes a prompt of another and dies while the model thinks.
    const first = context(answered);
    const a = acquire(first, 0);
    await handleCommands(first, a, [prompt('done', 'c1', 'hello', 0)]);
    for (let i = 0; i < 200 && (a.actors.get('done')?.state.pendingPrompts.length ?? 1) > 0; i++) await sleep(10);
    let asked = 0;
    const dying = context(async () => {
      asked++;
      return new Promise(() => {});
    });
    const d = acquire(dying, 0);
    await d.ready;
    await handleCommands(dying, d, [prompt('owed', 'c2', 'What is a moat?', 1, promptTrace)]);
    for (let i = 0; i < 200 && asked === 0; i++) await sleep(10);
    expect(asked).toBe(1);
    expect(await snapshots.getCheckpoint(0)).toBeNull();

    // The next owner: no checkpoint, the read model covers the whole partition.
    const next = context(answered);
    const n = acquire(next, 0);
    await n.ready;
    for (let i = 0; i < 300 && (n.actors.get('owed')?.state.pendingPrompts.length ?? 1) > 0; i++) await sleep(10);
    await n.actors.get('owed')?.queue;
    const owed = (await eventsOf(log)).filter((e) => e.conversationId === 'owed');
    expect(owed.map((e) => e.type)).toEqual(['ConversationStarted', 'PromptReceived', 'ReplyGenerated']);
    expect(owed.map((e) => e.traceparent)).toEqual([promptTrace, promptTrace, promptTrace]);
    expect(n.actors.has('done')).toBe(false);
    await log.close();
  });
});
