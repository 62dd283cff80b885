import { randomUUID } from 'node:crypto';
import { encodeEvent, envelope } from '../events/codec.ts';
import { applyBatch } from '../projections/apply.ts';
import { createPostgresDb } from '../projections/db-postgres.ts';
import { migrate } from '../projections/migrate.ts';
import type { LogRecord } from '../log/port.ts';
const schema = `probe_${randomUUID().slice(0, 8)}`;
const db = createPostgresDb({ url: 'postgres://postgres@127.0.0.1:5432/test', schema });
await migrate(db);
const P = 12;
const offsets = new Array(P).fill(0);
const seqs = new Map<string, number>();
const ids = Array.from({ length: 200 }, () => randomUUID());
function batch(p: number, n: number): LogRecord[] {
  const out: LogRecord[] = [];
  for (let i = 0; i < n; i++) {
    const id = ids[(p * 16 + i) % ids.length]!;
    const seq = (seqs.get(id) ?? 0) + 1; seqs.set(id, seq);
    const ev = seq === 1 ? { type: 'ConversationStarted', data: { twinId: 't', twinName: 'T', userId: null, metadata: {} } } : seq % 2 ? { type: 'PromptReceived', data: { text: 'x'.repeat(100), requestId: null } } : { type: 'ReplyGenerated', data: { promptSeq: seq - 1, text: 'y'.repeat(100), model: 'm', tokens: { prompt: 1, completion: 1, total: 2 }, latencyMs: 1, audio: false } };
    const e = envelope(id, seq - 1, [ev as never], { causationId: null, correlationId: null, traceparent: null, now: new Date(), newId: randomUUID })[0]!;
    out.push({ ...encodeEvent(e), topic: 'e', partition: p, offset: offsets[p]++, timestamp: Date.now() });
  }
  return out;
}
const stmt: Record<string, number[]> = {};
const pct = (xs: number[], q: number) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length * q)]!.toFixed(2);
for (const [conc, size] of [[1, 10], [12, 10], [1, 120]] as const) {
  const times: number[] = [];
  for (let round = 0; round < 60; round++) {
    await Promise.all(Array.from({ length: conc }, async (_, k) => {
      const b = batch(k, size);
      const t = performance.now();
      await db.tx((q) => applyBatch({ exec: q.exec, async query(text: string, params?: unknown[]) { const t0 = performance.now(); const r = await q.query(text, params); const key = text.trim().split(/\s+/).slice(0, 3).join(' '); (stmt[key] ??= []).push(performance.now() - t0); return r as never; } }, 'readmodel', k, b));
      times.push(performance.now() - t);
    }));
  }
  console.log(`concurrency ${conc} × ${size} events: tx p50 ${pct(times, 0.5)} p99 ${pct(times, 0.99)} ms`);
  for (const [k, v] of Object.entries(stmt)) console.log(`   ${k}: p50 ${pct(v, 0.5)}`);
  for (const k of Object.keys(stmt)) delete stmt[k];
}
await db.exec(`DROP SCHEMA ${schema} CASCADE`);
await db.close();
