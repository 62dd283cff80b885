// A conversation in the middle of a data dialogue recovers into the same node state from
// every tier (snapshot + tail, projected state + tail, full replay), like any conversation:
// on the embedded file log, the snapshot store's own JSON validation and the read model's
// stored state as the projector plans it.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decide } from '../../actors/decide.ts';
import type { FlowSetting } from '../../actors/decide.ts';
import type { Command } from '../../actors/commands.ts';
import { createRecovery } from '../../actors/recovery.ts';
import { fold, initialState } from '../../actors/state.ts';
import type { ConversationState } from '../../actors/state.ts';
import { TailIndex } from '../../actors/tail.ts';
import { decodeEvent, encodeEvent, envelope } from '../../events/codec.ts';
import type { LoggedEvent } from '../../events/schemas.ts';
import { compileFlow } from '../../flows/compile.ts';
import { createFlowRegistry } from '../../flows/registry.ts';
import { createFileLog } from '../../log/file.ts';
import { partitionFor } from '../../log/partition.ts';
import { TOPICS } from '../../log/port.ts';
import { planBatch } from '../../projections/plan.ts';
import { createMemorySnapshotStore } from '../../stores/snapshots/memory.ts';
import { REFERENCE_FLOW } from '../support/flow-backends.ts';

const env = { backends: ['crm'], email: true, sms: false };
const r = compileFlow(JSON.parse(readFileSync(REFERENCE_FLOW, 'utf8')), env);
if (!r.ok) throw new Error('the reference flow does not compile');
const registry = createFlowRegistry([r.flow], env);
const flows: FlowSetting = { forTwin: (id) => (id === 'onboarding-it' ? r.flow : undefined), of: (f) => registry.of(f), noInputSec: 30, model: false };
const twin = { id: 'onboarding-it', name: 'Registrazione' };

describe('recovery of a conversation in the middle of a DDT', () => {
  it('gives the same node state from the snapshot, the read model and a replay', async () => {
    const log = createFileLog({ dir: mkdtempSync(join(tmpdir(), 'gemello-tiers-')), partitions: 2 });
    const id = 'mid-ddt-1';
    const partition = partitionFor(id, 2);
    let live: ConversationState = initialState(id);
    const logged: LoggedEvent[] = [];
    let n = 0;
    const send = async (text: string) => {
      const cmd: Command = { type: 'SubmitPrompt', commandId: `c${++n}`, conversationId: id, correlationId: null, principal: null, traceparent: null, issuedAt: '2026-12-01T10:00:00.000Z', data: { twin, text } };
      const envs = envelope(id, live.seq, decide(cmd, live, flows), { causationId: cmd.commandId, correlationId: null, traceparent: null, now: new Date('2026-12-01T10:00:00Z'), newId: () => crypto.randomUUID() });
      const base = await log.append(TOPICS.events, partition, envs.map(encodeEvent));
      envs.forEach((e, i) => logged.push({ ...e, position: { partition, offset: base + i } }));
      live = fold(id, envs, live);
    };
    for (const t of ['ciao', 'mi chiamo Giulia Rossi', 'sì', 'il 3 marzo']) await send(t);
    const atSnapshot = { state: live, last: logged[logged.length - 1]! };
    await send('boh'); // a noMatch while the year is asked
    expect(live.flow!.node).toEqual({ index: 1, phase: 'ask', sub: 'year', parts: { day: 3, month: 3 }, noMatch: 1, noInput: 0 });

    // The tail a host taking the partition over reads: from just after the snapshot.
    const tail = new TailIndex(atSnapshot.last.position.offset + 1);
    await log.read(TOPICS.events, partition, tail.start, (records) => { for (const rec of records) tail.add(decodeEvent(rec)); });

    const snapshots = createMemorySnapshotStore();
    await snapshots.put({ conversationId: id, seq: atSnapshot.state.seq, eventId: atSnapshot.state.lastEventId, position: atSnapshot.last.position, state: atSnapshot.state });
    const plan = planBatch(new Map(), logged.filter((e) => e.seq <= atSnapshot.state.seq));
    const row = plan.conversations[0]!;
    const readModel = {
      stateOf: async () => ({ conversationId: id, seq: row.last_seq, eventId: row.last_event_id, position: { partition, offset: row.last_offset }, state: { ...JSON.parse(JSON.stringify(row.state)), messages: [] } }),
      coveredUntil: async () => atSnapshot.last.position.offset + 1,
    };
    const withoutMessages = ({ messages: _m, ...s }: ConversationState) => s;

    const fromSnapshot = await createRecovery({ log, snapshots, readModel }).recover(id, partition, tail);
    expect(fromSnapshot.tier).toBe('snapshot');
    expect(fromSnapshot.state).toEqual(JSON.parse(JSON.stringify(live)));

    const fromReadModel = await createRecovery({ log, snapshots: createMemorySnapshotStore(), readModel }).recover(id, partition, tail);
    expect(fromReadModel.tier).toBe('readmodel');
    expect(withoutMessages(fromReadModel.state)).toEqual(withoutMessages(JSON.parse(JSON.stringify(live))));

    const fromReplay = await createRecovery({ log, snapshots: createMemorySnapshotStore(), readModel: null }).recover(id, partition, tail);
    expect(fromReplay.tier).toBe('replay');
    expect(fromReplay.state).toEqual(live);

    // And the dialogue goes on from there the same way: the year completes the date.
    for (const s of [fromSnapshot.state, fromReadModel.state, fromReplay.state]) {
      const next = decide({ type: 'SubmitPrompt', commandId: 'again', conversationId: id, correlationId: null, principal: null, traceparent: null, issuedAt: '2026-12-01T10:00:00.000Z', data: { twin, text: '1990' } }, s, flows);
      expect(next.map((e) => e.type)).toEqual(['PromptReceived', 'ValueRead', 'MessageSaid']);
      expect(next[2]!.data).toMatchObject({ kind: 'confirm', text: 'Sei nato il 3 marzo 1990?' });
    }
    await log.close();
  });
});
