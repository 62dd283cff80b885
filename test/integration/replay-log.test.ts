// Full replay (actors/replay.ts) folds every conversation of the log to the state its events
// give, in this thread or in worker threads (or both, sharing the conversations), sealed
// content opened with the keys.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { endIdle } from '../../actors/replay-pool.ts';
import { replayLog } from '../../actors/replay.ts';
import { fold } from '../../actors/state.ts';
import { encodeSealedEvent, envelope } from '../../events/codec.ts';
import type { DomainEvent, EventEnvelope } from '../../events/schemas.ts';
import { createFileLog } from '../../log/file.ts';
import { partitionFor } from '../../log/partition.ts';
import { TOPICS } from '../../log/port.ts';
import type { KeyStore } from '../../sealing/keys.ts';
import { newDataKey } from '../../sealing/seal.ts';

const dir = mkdtempSync(join(tmpdir(), 'gemello-replay-log-'));
afterAll(async () => {
  await endIdle();
  rmSync(dir, { recursive: true, force: true });
});
const PARTITIONS = 4;

const turns = (id: string, n: number): EventEnvelope[] => {
  const domain: DomainEvent[] = [{ type: 'ConversationStarted', data: { twinId: 't', twinName: 'Twin', userId: null, metadata: {} } }];
  for (let i = 0; i < n; i++) {
    domain.push({ type: 'PromptReceived', data: { text: `question ${i} of ${id}`, requestId: null } });
    domain.push({ type: 'ReplyGenerated', data: { promptSeq: domain.length, text: `answer ${i}`, model: 'm', tokens: { prompt: 1, completion: 1, total: 2 }, latencyMs: 1, audio: false } });
  }
  return envelope(id, 0, domain, { causationId: null, correlationId: null, traceparent: null, now: new Date(), newId: randomUUID });
};

describe('full replay', () => {
  it('folds every conversation to the state of its events, in this thread and in worker threads alike', async () => {
    const log = createFileLog({ dir: join(dir, 'ok'), partitions: PARTITIONS });
    const keys = new Map<string, Uint8Array>();
    const store: KeyStore = { get: async (ids) => new Map([...ids].flatMap((id) => (keys.has(id) ? [[id, keys.get(id)!]] : []))), create: async () => newDataKey(), destroy: async () => false, forget: () => {} };
    const convs = Array.from({ length: 40 }, (_, i) => ({ id: `conv-${i}-${randomUUID()}`, events: turns(`c${i}`, 3 + (i % 4)) }));
    for (const c of convs) {
      keys.set(c.id, newDataKey());
      c.events = c.events.map((e) => ({ ...e, conversationId: c.id }));
    }
    // Interleaved in their partitions, as live traffic writes them.
    const parts = Array.from({ length: PARTITIONS }, () => [] as ReturnType<typeof encodeSealedEvent>[]);
    for (let k = 0; k < Math.max(...convs.map((c) => c.events.length)); k++) {
      for (const c of convs) {
        if (!c.events[k]) continue;
        const r = encodeSealedEvent(c.events[k]!, keys.get(c.id));
        // One conversation written as pretty-printed JSON (newlines in the text): read all the same.
        parts[partitionFor(c.id, PARTITIONS)]!.push(c === convs[0] ? { ...r, value: JSON.stringify(JSON.parse(r.value), null, 1) } : r);
      }
    }
    for (const [p, records] of parts.entries()) for (let i = 0; i < records.length; i += 50) await log.append(TOPICS.events, p, records.slice(i, i + 50));
    const here = await replayLog({ log, keys: store });
    const inWorkers = await replayLog({ log, keys: store, workers: 2 });
    // Half of the conversations decoded by this thread, the other half by one worker.
    const shared = await replayLog({ log, keys: store, workers: 1, share: 0.5 });
    const total = convs.reduce((n, c) => n + c.events.length, 0);
    expect([here.events, inWorkers.events, shared.events]).toEqual([total, total, total]);
    for (const c of convs) {
      expect(here.states.get(c.id)?.state).toEqual(fold(c.id, c.events));
      expect(inWorkers.states.get(c.id)).toEqual(here.states.get(c.id));
      expect(shared.states.get(c.id)).toEqual(here.states.get(c.id));
    }
    // States that keep 3 messages (their text opened at the end, for what they keep): the same in either place.
    const short = await replayLog({ log, keys: store, keep: 3 });
    const shortInWorkers = await replayLog({ log, keys: store, keep: 3, workers: 1, share: 0.5 });
    for (const c of convs) {
      expect(short.states.get(c.id)?.state).toEqual(fold(c.id, c.events, undefined, 3));
      expect(shortInWorkers.states.get(c.id)).toEqual(short.states.get(c.id));
    }
    // Without the keys the content reads as erased, the rest of the fold is the same.
    const blind = await replayLog({ log, workers: 2 });
    expect(blind.states.get(convs[0]!.id)?.state.messages[0]?.content).toBe('[erased]');
    expect(blind.states.get(convs[0]!.id)?.state.seq).toBe(convs[0]!.events.length);
    await log.close();
  });

  it('fails on a gap in a conversation\'s seqs, in worker threads too', async () => {
    const log = createFileLog({ dir: join(dir, 'gap'), partitions: PARTITIONS });
    const id = `conv-gap-${randomUUID()}`;
    const events = turns(id, 2).map((e) => ({ ...e, conversationId: id }));
    await log.append(TOPICS.events, partitionFor(id, PARTITIONS), [events[0]!, events[2]!].map((e) => encodeSealedEvent(e, null)));
    await expect(replayLog({ log })).rejects.toThrow(/expected seq 2, got 3/);
    await endIdle();
    await expect(replayLog({ log, workers: 2 })).rejects.toThrow(/expected seq 2, got 3/);
    // The two workers kept from that replay (actors/replay-pool.ts), one of them failed, fold the
    // next one from nothing: neither the failure nor the failed conversation's events carry over.
    const next = createFileLog({ dir: join(dir, 'after-gap'), partitions: PARTITIONS });
    const oks = Array.from({ length: 8 }, (_, i) => `conv-ok-${i}-${randomUUID()}`);
    const okEvents = new Map(oks.map((ok) => [ok, turns(ok, 2).map((e) => ({ ...e, conversationId: ok }))]));
    for (const [ok, list] of okEvents) await next.append(TOPICS.events, partitionFor(ok, PARTITIONS), list.map((e) => encodeSealedEvent(e, null)));
    const again = await replayLog({ log: next, workers: 2 });
    expect(again.events).toBe(oks.length * 5);
    expect(new Set(again.states.keys())).toEqual(new Set(oks));
    for (const [ok, list] of okEvents) expect(again.states.get(ok)?.state).toEqual(fold(ok, list));
    await expect(replayLog({ log, workers: 1, share: 1 })).rejects.toThrow(/expected seq 2, got 3/);
    await log.close();
    await next.close();
  });
});
