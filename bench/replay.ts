// Full replay on each Kafka client in one run: every partition from offset 0 read,
// decoded (JSON, envelope and data validated, sealed content opened: the messages' text once
// the fold is done, for the messages the states keep) and folded, first
// partition by partition, then all twelve at once; beside it the read alone, and where
// each microsecond of an event goes (each step timed on its own over the same records).
//
//   BENCH_CONVERSATIONS (2000) × BENCH_EVENTS (50) events on 12 partitions, sealed.
import { Buffer } from 'node:buffer';
import { isDeepStrictEqual } from 'node:util';
import { REPLAY_SHARE, REPLAY_WORKERS, replayLog } from '../actors/replay.ts';
import { evolve, initialState } from '../actors/state.ts';
import type { ConversationState } from '../actors/state.ts';
import { decodeEventValue } from '../events/codec.ts';
import { fastSafeParse } from '../events/fast-parse.ts';
import { EventData, RawEnvelope } from '../events/schemas.ts';
import type { KafkaClient } from '../log/kafka-client.ts';
import { TOPICS } from '../log/port.ts';
import type { LogRecord } from '../log/port.ts';
import { keysFor } from '../sealing/keys.ts';
import { PERSONAL, sealContext } from '../sealing/personal.ts';
import { isSealed, open } from '../sealing/seal.ts';
import { appendAll, batches, CLIENTS, conversations, logger, makeKeys, now, PARTITIONS, runScope } from './data-fixture.ts';
import { profiled } from './profile.ts';
import { loadNow, report, round, startRun } from './report.ts';

const log = logger('replay');
/** CPU time so far, µs: the whole process (every thread) and this thread alone. */
const cpu = () => {
  const c = process.cpuUsage();
  const t = process.threadCpuUsage();
  return { all: c.user + c.system, main: t.user + t.system };
};
const SAMPLE = 20_000;
/** Worker threads of the replay and the reading thread's share (BENCH_REPLAY_WORKERS, BENCH_REPLAY_SHARE): the product's defaults unless set (actors/replay.ts). */
const WORKERS = Number(process.env.BENCH_REPLAY_WORKERS ?? REPLAY_WORKERS);
const SHARE = Number(process.env.BENCH_REPLAY_SHARE ?? REPLAY_SHARE);
/** Runs of the replay in workers (BENCH_REPLAY_RUNS, default 3); the median one is reported. */
const RUNS = Number(process.env.BENCH_REPLAY_RUNS ?? 3);

/** µs per event of each decoding step, each timed alone over the same records. */
function breakdown(records: LogRecord[], ring: Map<string, Uint8Array>) {
  const time = (fn: () => void) => {
    fn(); // warm
    const t = now();
    fn();
    return round(((now() - t) * 1000) / records.length, 2);
  };
  const parsed = records.map((r) => JSON.parse(r.value));
  const decoded = records.map((r) => decodeEventValue(r.value, ring));
  // Validation as decoding does it: the checks compiled from the zod schemas (events/fast-parse.ts).
  const envelope = fastSafeParse(RawEnvelope);
  const data = Object.fromEntries(Object.entries(EventData).map(([t, s]) => [t, fastSafeParse(s)])) as Record<string, ReturnType<typeof fastSafeParse>>;
  const us = {
    json_parse: time(() => void records.forEach((r) => JSON.parse(r.value))),
    envelope_zod: time(() => void parsed.forEach((j) => envelope(j))),
    aes_gcm_open: time(() => void parsed.forEach((j) => {
      const p = PERSONAL[j.type as keyof typeof PERSONAL];
      const v = p && j.data[p.field];
      if (p && isSealed(v)) open(ring.get(j.conversationId)!, v, sealContext(j.conversationId, j.eventId, p.field));
    })),
    data_zod: time(() => void decoded.forEach((e) => data[e.type]!(e.data))),
    decode_total: time(() => void records.forEach((r) => decodeEventValue(r.value, ring))),
    fold: time(() => {
      const states = new Map<string, ConversationState>();
      for (const e of decoded) states.set(e.conversationId, evolve(states.get(e.conversationId) ?? initialState(e.conversationId), e));
    }),
  };
  return us;
}

async function measure(client: KafkaClient, scope: ReturnType<typeof runScope>, db: Awaited<ReturnType<ReturnType<typeof runScope>['db']>>, expected: Map<string, ConversationState>) {
  const kafka = await scope.log(client, 'replay');
  try {
    const parts = Array.from({ length: PARTITIONS }, (_, p) => p);
    // The read alone, partition by partition: what the client costs.
    let read = 0;
    let bytes = 0;
    const sample: LogRecord[] = [];
    const tr = now();
    const c0 = cpu();
    for (const p of parts) {
      await kafka.read(TOPICS.events, p, 0, (records) => {
        read += records.length;
        for (const r of records) {
          bytes += Buffer.byteLength(r.value);
          if (sample.length < SAMPLE) sample.push(r);
        }
      });
    }
    const readMs = now() - tr;
    const readCpu = cpu().all - c0.all;
    // And all partitions side by side: what bounds the replays that read them so.
    let readAll = 0;
    const ta = now();
    await Promise.all(parts.map((p) => kafka.read(TOPICS.events, p, 0, (records) => void (readAll += records.length))));
    const readAllMs = now() - ta;
    // Full replay partition by partition, then all at once, each with a fresh key store (as after a restart).
    let seqEvents = 0;
    let seqMs = 0;
    const byPartition: Array<Awaited<ReturnType<typeof replayLog>>> = [];
    const c1 = cpu();
    await profiled(`replay-${client}`, async () => {
      for (const p of parts) {
        const t = now();
        const r = await replayLog({ log: kafka, keys: scope.keys(db), partitions: [p] });
        seqMs += now() - t;
        seqEvents += r.events;
        byPartition.push(r);
      }
    });
    const seqCpu = cpu().all - c1.all;
    const t = now();
    const all = await replayLog({ log: kafka, keys: scope.keys(db) });
    const allMs = now() - t;
    // All at once again, decoded and folded in worker threads (this thread reads and decodes its share),
    // RUNS times: on the shared machine one run is whatever the neighbours left; the median run is reported.
    const runs: Array<{ r: Awaited<ReturnType<typeof replayLog>>; ms: number; main: number; all: number }> = [];
    for (let i = 0; i < RUNS; i++) {
      const tw = now();
      const c2 = cpu();
      const r = await replayLog({ log: kafka, keys: scope.keys(db), workers: WORKERS, share: SHARE });
      const ms = now() - tw;
      const c3 = cpu();
      runs.push({ r, ms, main: (c3.main - c2.main) / r.events, all: (c3.all - c2.all) / r.events });
    }
    const byRate = [...runs].sort((a, b) => a.r.events / a.ms - b.r.events / b.ms);
    const median = byRate[Math.floor(byRate.length / 2)]!;
    const inWorkers = median.r;
    const workersMs = median.ms;
    const workersMainUs = median.main;
    const workersAllUs = median.all;
    const workersRuns = runs.map((x) => Math.round(x.r.events / (x.ms / 1000)));
    // Each run's CPU an event, every thread: the first starts the worker, the others reuse it (actors/replay-pool.ts).
    const workersRunsCpu = runs.map((x) => round(x.all, 2));
    // Every replay gives every conversation the state the writer folded from its events (the
    // messages' text opened, as the writer had it), and nothing more.
    const replays: Array<[string, Awaited<ReturnType<typeof replayLog>>]> = [['all at once', all], ...runs.map((x, i): [string, typeof all] => [`in workers (run ${i + 1})`, x.r])];
    const partitioned = new Map(byPartition.flatMap((r) => [...r.states]));
    for (const [id, state] of expected) {
      if (!isDeepStrictEqual(partitioned.get(id)?.state, state)) throw new Error(`${client}: the state of ${id} replayed with its partition differs from the fold of its events`);
      for (const [how, r] of replays) if (!isDeepStrictEqual(r.states.get(id)?.state, state)) throw new Error(`${client}: the state of ${id} replayed ${how} differs from the fold of its events`);
    }
    for (const [how, r] of replays) if (r.events !== seqEvents || r.states.size !== expected.size) throw new Error(`${client}: replayed ${how} ${r.events} events of ${r.states.size} conversations, not ${seqEvents} of ${expected.size}`);
    if (partitioned.size !== expected.size) throw new Error(`${client}: the partitions replayed ${partitioned.size} conversations, not ${expected.size}`);
    const ring = (await keysFor(scope.keys(db), sample)) as Map<string, Uint8Array>;
    const us = breakdown(sample, ring);
    const r = {
      read_only_events_per_s: Math.round(read / (readMs / 1000)),
      read_us_per_event: round((readMs * 1000) / read, 2),
      read_all_at_once_events_per_s: Math.round(readAll / (readAllMs / 1000)),
      read_cpu_us_per_event: round(readCpu / read, 2),
      replay_cpu_us_per_event: round(seqCpu / seqEvents, 2),
      // One thread does it all: one idle core's worth.
      replay_cpu_bound_events_per_s: Math.round(1e6 / (seqCpu / seqEvents)),
      workers_main_cpu_us_per_event: round(workersMainUs, 2),
      workers_all_cpu_us_per_event: round(workersAllUs, 2),
      // The reading thread, or the two cores shared by every thread, whichever is tighter.
      workers_cpu_bound_events_per_s: Math.round(1e6 / Math.max(workersMainUs, workersAllUs / 2)),
      full_replay_events_per_s: Math.round(seqEvents / (seqMs / 1000)),
      full_replay_concurrent_events_per_s: Math.round(all.events / (allMs / 1000)),
      full_replay_workers_events_per_s: Math.round(inWorkers.events / (workersMs / 1000)),
      full_replay_us_per_event: round((seqMs * 1000) / seqEvents, 2),
      ...Object.fromEntries(Object.entries(us).map(([k, v]) => [`${k}_us`, v])),
      events: all.events,
      event_bytes: Math.round(bytes / read),
    };
    log(`${client}: runs in workers CPU µs/event every thread ${workersRunsCpu.join(', ')}`);
    log(`${client}: read ${r.read_only_events_per_s}/s (all at once ${r.read_all_at_once_events_per_s}/s), replay ${r.full_replay_events_per_s}/s (all at once ${r.full_replay_concurrent_events_per_s}/s, in ${WORKERS} worker(s) + ${SHARE} here ${r.full_replay_workers_events_per_s}/s, median of ${workersRuns.join(', ')}); µs/event ${JSON.stringify(us)}; CPU µs/event: replay ${r.replay_cpu_us_per_event}, read ${r.read_cpu_us_per_event}, workers ${r.workers_main_cpu_us_per_event} main / ${r.workers_all_cpu_us_per_event} all`);
    return { r, runs: workersRuns, runsCpu: workersRunsCpu };
  } finally {
    await kafka.close();
  }
}

export async function run(): Promise<void> {
  const runInfo = startRun();
  const scope = runScope('replay');
  try {
    const db = await scope.db('keys');
    const writer = await scope.log('platformatic', 'writer');
    const convs = conversations();
    try {
      await writer.ensureTopics([TOPICS.events]);
      await makeKeys(convs, scope.keys(db));
      const w = await appendAll(writer, batches(convs));
      log(`${w.events.toLocaleString()} events written in ${(w.ms / 1000).toFixed(1)} s`);
    } finally {
      await writer.close();
    }
    const expected = new Map(convs.map((c) => [c.id, c.state]));
    const by: Record<string, Awaited<ReturnType<typeof measure>>['r']> = {};
    const runsBy: Record<string, number[]> = {};
    const runsCpuBy: Record<string, number[]> = {};
    for (const client of CLIENTS) {
      const m = await measure(client, scope, db, expected);
      by[client] = m.r;
      runsBy[client] = m.runs;
      runsCpuBy[client] = m.runsCpu;
    }
    await db.close();
    const metrics: Record<string, number> = {};
    for (const [client, r] of Object.entries(by)) for (const [k, v] of Object.entries(r)) metrics[`${client}_${k}`] = v;
    const goal = '≥ 100,000 events/s';
    const row = (what: string, key: string, unit: string, g = ''): [string, string, string] => [what, CLIENTS.map((c) => `${c} ${by[c]![key as keyof (typeof by)[string]].toLocaleString('en-US')}${unit}`).join(', '), g];
    report({
      name: 'replay',
      params: { ...runInfo.params(), backends: 'Kafka 4.1 on 127.0.0.1 (shared broker), both clients; keys from PostgreSQL', clients: CLIENTS, events: by[CLIENTS[0]!]!.events, partitions: PARTITIONS, sealed: true, breakdown_sample: SAMPLE, replay_workers: WORKERS, replay_share: SHARE, replay_workers_runs: RUNS, workers_runs_events_per_s: runsBy, workers_runs_all_cpu_us_per_event: runsCpuBy },
      metrics,
      table: [
        row('full replay, partition by partition (read + decode + fold)', 'full_replay_events_per_s', ' events/s', goal),
        row('full replay, all 12 partitions at once', 'full_replay_concurrent_events_per_s', ' events/s', goal),
        row(`full replay, all at once, decoded and folded in ${WORKERS} worker thread(s) and ${Math.round(SHARE * 100)} % in the reading thread (median of ${RUNS} runs)`, 'full_replay_workers_events_per_s', ' events/s', goal),
        [`  its ${RUNS} runs`, CLIENTS.map((c) => `${c} ${runsBy[c]!.map((x) => x.toLocaleString('en-US')).join(', ')}`).join('; '), ''],
        [`  its ${RUNS} runs' CPU per event, every thread (the first starts the worker)`, CLIENTS.map((c) => `${c} ${runsCpuBy[c]!.join(', ')} µs`).join('; '), ''],
        row('  CPU per event: replay in one thread', 'replay_cpu_us_per_event', ' µs', ''),
        row('  CPU per event of the read alone', 'read_cpu_us_per_event', ' µs', ''),
        row('  what one idle core sustains at that CPU (one thread)', 'replay_cpu_bound_events_per_s', ' events/s', goal),
        row(`  with ${WORKERS} worker(s) and the share here: CPU per event of the reading thread`, 'workers_main_cpu_us_per_event', ' µs', ''),
        row(`  with ${WORKERS} worker(s) and the share here: CPU per event, every thread`, 'workers_all_cpu_us_per_event', ' µs', ''),
        row('  what two idle cores sustain at that CPU (workers)', 'workers_cpu_bound_events_per_s', ' events/s', goal),
        row('  the read alone, all 12 partitions at once', 'read_all_at_once_events_per_s', ' events/s', ''),
        row('  per event (partition by partition)', 'full_replay_us_per_event', ' µs', '≤ 10 µs'),
        row('  of it: the read alone (no decoding)', 'read_us_per_event', ' µs', ''),
        row('  JSON.parse', 'json_parse_us', ' µs', ''),
        row('  envelope validation (compiled from zod, events/fast-parse.ts)', 'envelope_zod_us', ' µs', ''),
        row('  AES-256-GCM open', 'aes_gcm_open_us', ' µs', ''),
        row('  data validation (compiled from zod)', 'data_zod_us', ' µs', ''),
        row('  decode in all (parse, validate, open, upcast)', 'decode_total_us', ' µs', ''),
        row('  fold (evolve)', 'fold_us', ' µs', ''),
        ['machine load (1-min average) at start / end', `${runInfo.loadStart} / ${loadNow()}`, '(2 cores, shared)'],
      ],
    });
  } finally {
    const problems = await scope.close();
    log(problems.length ? `clean-up problems: ${problems.join('; ')}` : `cleaned up ${scope.namespace}*`);
  }
}
