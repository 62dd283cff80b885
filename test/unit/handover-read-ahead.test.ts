// A rolling restart's takeover reads ahead: the host handing a partition over names the
// conversations it had active, and the next owner reads their snapshots the moment the
// partition is assigned (a hint, used once: a later activation reads its own). Commands
// fetched while a partition is being taken over go to the handler as one batch.
import { describe, expect, it } from 'vitest';
import type { ReplyModel, SnapshotStore } from '../../actors/ports.ts';
import { createTwinCatalog } from '../../actors/twins.ts';
import { createActorHost, createHostContext } from '../../actors/host.ts';
import { handleCommands } from '../../actors/host/handle-command.ts';
import { onAssigned } from '../../actors/host/partitions.ts';
import { decodeEvents } from '../../events/codec.ts';
import type { LoggedEvent } from '../../events/schemas.ts';
import { createLanes } from '../../log/lanes.ts';
import type { EventLog, LogRecord } from '../../log/port.ts';
import { TOPICS } from '../../log/port.ts';
import { createMemorySnapshotStore } from '../../stores/snapshots/memory.ts';
import { createMetrics } from '../../telemetry/metrics.ts';
import { quietLogger, seedTwin, sleep, tempFileLogs } from '../support/temp-log.ts';

const fileLog = tempFileLogs('read-ahead');

const command = (conversationId: string, commandId: string, text: string) =>
  JSON.stringify({ type: 'SubmitPrompt', commandId, conversationId, correlationId: null, principal: null, traceparent: null, issuedAt: new Date(0).toISOString(), data: { twin: seedTwin, text } });
const record = (conversationId: string, commandId: string, text: string, offset: number): LogRecord => ({
  topic: TOPICS.commands, partition: 0, offset, key: conversationId, headers: {}, timestamp: Date.now(), value: command(conversationId, commandId, text),
});

async function eventsOf(log: EventLog, id: string): Promise<LoggedEvent[]> {
  const out: LoggedEvent[] = [];
  await log.read(TOPICS.events, 0, 0, async (records) => void out.push(...(await decodeEvents(records, null))));
  return out.filter((e) => e.conversationId === id);
}

async function until(what: () => boolean | Promise<boolean>, ms = 3_000): Promise<void> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(5)) if (await what()) return;
  throw new Error('timed out');
}

describe('the takeover of a handed-over partition', () => {
  it('reads the conversations its last owner named ahead, once: their first activation uses it, a later one reads its own', async () => {
    const log = fileLog(1);
    const store = createMemorySnapshotStore();
    const gets = new Map<string, number>();
    const snapshots: SnapshotStore = { ...store, get: (id) => (gets.set(id, (gets.get(id) ?? 0) + 1), store.get(id)) };
    const reply: ReplyModel['reply'] = async () => ({ text: 'Buy wonderful businesses.', model: 'stub', tokens: { prompt: 1, completion: 1, total: 2 } });
    const options = { log, snapshots, readModel: null, catalog: createTwinCatalog(), replyModel: { name: 'stub', reply }, metrics: createMetrics(), logger: quietLogger };
    const replies = async (id: string) => (await eventsOf(log, id)).filter((e) => e.type === 'ReplyGenerated').length;

    // The first owner answers c1, then hands the partition over.
    const first = createActorHost(options);
    await first.start();
    await log.append(TOPICS.commands, 0, [{ key: 'c1', value: command('c1', 'k1', 'hello'), headers: {} }]);
    await until(async () => (await replies('c1')) === 1);
    await first.stop();
    expect(await snapshots.getActive!(0)).toEqual(['c1']);

    // The next owner reads c1's snapshot as soon as the partition is assigned, before any command.
    const next = createHostContext(options);
    gets.clear();
    onAssigned(next, [0]);
    await until(() => gets.get('c1') === 1);
    const part = next.partitions.get(0)!;
    await part.ready;
    await handleCommands(next, part, [record('c1', 'k2', 'and then?', 1)]);
    await until(async () => (await replies('c1')) === 2);
    expect(gets.get('c1')).toBe(1);
    // Recovered from that snapshot: the conversation goes on at the next seq.
    const seqs = (await eventsOf(log, 'c1')).map((e) => e.seq);
    expect(seqs).toEqual(seqs.map((_, i) => i + 1));

    // Passivated and activated again: read anew, not from what was read ahead.
    await part.actors.get('c1')!.queue;
    part.actors.delete('c1');
    await handleCommands(next, part, [record('c1', 'k3', 'once more', 2)]);
    expect(gets.get('c1')).toBe(2);
    await until(async () => (await replies('c1')) === 3);
    await log.close();
  });

  it('hands the commands fetched while a partition is not ready to its handler as one batch', async () => {
    let ready = false;
    let open!: () => void;
    const notReady = new Promise<void>((r) => (open = r));
    const batches: number[][] = [];
    const lanes = createLanes({
      topic: 't',
      partitions: 1,
      consume: { handle: async (_p, records) => void batches.push(records.map((r) => r.offset)), ready: () => (ready ? null : notReady) },
      stopped: () => false,
      leaving: () => false,
      leavingNow: new Promise(() => {}),
      press: () => {},
      warn: () => {},
    });
    const at = (offset: number) => () => ({ topic: 't', partition: 0, offset, key: 'k', value: '{}', headers: {}, timestamp: 0 });
    lanes.push(0, 0, at(0));
    lanes.start(0);
    await sleep(5);
    lanes.push(0, 1, at(1));
    lanes.push(0, 2, at(2));
    lanes.start(0);
    await sleep(5);
    expect(batches).toEqual([]);
    ready = true;
    open();
    await lanes.drain(1_000);
    expect(batches).toEqual([[0, 1, 2]]);
    // Ready: what comes is handed over at once.
    lanes.push(0, 3, at(3));
    lanes.start(0);
    await lanes.drain(1_000);
    expect(batches).toEqual([[0, 1, 2], [3]]);
  });
});
