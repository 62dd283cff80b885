import { randomUUID } from 'node:crypto';
import { decodeEvent, encodeSealedEvent, envelope } from '../events/codec.ts';
import { newDataKey } from '../events/seal.ts';
import { evolve, initialState } from '../actors/state.ts';
const key = newDataKey();
const id = randomUUID();
const recs = [] as any[];
for (let seq = 1; seq <= 50; seq++) {
  const ev = seq === 1 ? { type: 'ConversationStarted', data: { twinId: 't', twinName: 'T', userId: null, metadata: {} } } : seq % 2 ? { type: 'PromptReceived', data: { text: 'x'.repeat(100), requestId: 'r' } } : { type: 'ReplyGenerated', data: { promptSeq: seq - 1, text: 'y'.repeat(100), model: 'm', tokens: { prompt: 1, completion: 1, total: 2 }, latencyMs: 1, audio: false } };
  const e = envelope(id, seq - 1, [ev as never], { causationId: randomUUID(), correlationId: null, traceparent: '00-' + 'a'.repeat(32) + '-' + 'b'.repeat(16) + '-01', now: new Date(), newId: randomUUID })[0]!;
  for (const k of [null, key]) recs.push({ k, rec: { ...encodeSealedEvent(e, k), topic: 'e', partition: 0, offset: seq, timestamp: 0 } });
}
const ring = new Map([[id, key]]);
for (const sealed of [false, true]) {
  const rs = recs.filter((r) => (r.k !== null) === sealed).map((r) => r.rec);
  for (let w = 0; w < 2; w++) {
    const t = performance.now(); let n = 0;
    while (performance.now() - t < 1000) { let s = initialState(id); for (const r of rs) { s = evolve(s, decodeEvent(r, ring)); n++; } }
    if (w) console.log(`sealed=${sealed}: ${(n / ((performance.now() - t) / 1000)).toFixed(0)} events/s decode+fold`);
  }
  const t = performance.now(); let n = 0;
  while (performance.now() - t < 1000) { for (const r of rs) { JSON.parse(r.value); n++; } }
  console.log(`  JSON.parse only: ${(n / ((performance.now() - t) / 1000)).toFixed(0)}/s`);
}
