// Append on each Kafka client, with Emmett (PostgreSQL event store) appending the same
// events to the same PostgreSQL as the peer, in one run: the ratio is what counts on a
// shared machine. gemello appends every partition's events in batches of 500 (acks=all),
// the twelve partitions side by side, records encoded (and sealed) beforehand; Emmett
// appends each conversation's 50 events as one stream, 4 streams side by side.
//
//   BENCH_CONVERSATIONS (2000) × BENCH_EVENTS (50) events; BENCH_PEER_STREAMS (1000).
import { getPostgreSQLEventStore } from '@event-driven-io/emmett-postgresql';
import postgres from 'postgres';
import { TOPICS } from '../log/port.ts';
import { DATABASE_URL } from '../test/support/env.ts';
import { APPEND_BATCH, appendAll, batches, CLIENTS, CONVERSATIONS, conversations, EVENTS, logger, makeKeys, now, PARTITIONS, runScope } from './data-fixture.ts';
import { profiled } from './profile.ts';
import { loadNow, report, round, startRun } from './report.ts';
import { envelopeAt } from './synthetic.ts';

const log = logger('append');
const PEER_STREAMS = Number(process.env.BENCH_PEER_STREAMS ?? 1_000);
/** Rounds of (each client, then the peer), so noise on the shared machine hits each alike; 5 (was 3): on the shared machine the rounds' ratios varied more than the gap to the goal, and the median of 5 moves less. */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);

type Peer = ReturnType<typeof getPostgreSQLEventStore>;

/** Emmett's store in a schema of its own, migrated once (its migration does not run twice in a process). */
async function emmettStore(schema: string): Promise<Peer> {
  const admin = postgres(DATABASE_URL, { max: 1, onnotice: () => {} });
  await admin.unsafe(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
  await admin.end();
  const url = `${DATABASE_URL}${DATABASE_URL.includes('?') ? '&' : '?'}options=${encodeURIComponent(`-c search_path=${schema}`)}`;
  const peer = getPostgreSQLEventStore(url);
  await peer.schema.migrate(); // once, before concurrent appends race to create it
  return peer;
}

/** Emmett appending each conversation's events as one stream (named for the round), 4 streams side by side; events/s. */
async function emmett(peer: Peer, convs: ReturnType<typeof conversations>, round: number): Promise<number> {
  const streams = convs.map((c) => ({ name: `conversation-${c.id}-${round}`, events: Array.from({ length: EVENTS }, (_, k) => {
    const e = envelopeAt(c, k + 1);
    return { type: e.type, data: e as unknown as Record<string, unknown> };
  }) }));
  let next = 0;
  const t = now();
  await Promise.all(Array.from({ length: 4 }, async () => {
    while (next < streams.length) {
      const s = streams[next++]!;
      await peer.appendToStream(s.name, s.events);
    }
  }));
  return (streams.length * EVENTS) / ((now() - t) / 1000);
}

export async function run(): Promise<void> {
  const runInfo = startRun();
  const scope = runScope('append');
  try {
    const keysDb = await scope.db('keys');
    const convs = conversations();
    await makeKeys(convs, scope.keys(keysDb));
    await keysDb.close();
    const schema = `bench_append_emmett_${scope.namespace.replace(/\W/g, '')}`;
    scope.schemas.push(schema);
    const peer = await emmettStore(schema);
    const rates: Record<string, number[]> = Object.fromEntries([...CLIENTS, 'emmett'].map((k) => [k, []]));
    const cpuUs: Record<string, number[]> = Object.fromEntries(CLIENTS.map((k) => [k, []]));
    for (let round = 0; round < ROUNDS; round++) {
      for (const client of CLIENTS) {
        const kafka = await scope.log(client, 'append');
        try {
          const topic = `${TOPICS.events}.${client}.${round}`;
          await kafka.ensureTopics([topic]);
          const parts = batches(convs.map((c) => ({ ...c })));
          await kafka.append(topic, 0, parts[0]![0]!.slice(0, 1)); // connected, metadata known
          const c0 = process.cpuUsage();
          const r = await profiled(`append-${client}-${round + 1}`, () => appendAll(kafka, parts, topic));
          const c1 = process.cpuUsage(c0);
          cpuUs[client]!.push((c1.user + c1.system) / r.events);
          rates[client]!.push(r.events / (r.ms / 1000));
          log(`${client} round ${round + 1}: ${r.events.toLocaleString()} events in ${(r.ms / 1000).toFixed(2)} s`);
        } finally {
          await kafka.close();
        }
      }
      rates.emmett!.push(await emmett(peer, convs.slice(0, PEER_STREAMS), round));
      log(`emmett round ${round + 1}: ${Math.round(rates.emmett!.at(-1)!).toLocaleString()} events/s`);
    }
    await peer.close();
    const best = (k: string) => Math.round(Math.max(...rates[k]!));
    // The ratio within each round (the same minute's noise for both), and its median.
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const ratios = (c: string) => rates[c]!.map((r, i) => r / rates.emmett![i]!);
    const metrics: Record<string, number> = { peer_emmett_append_events_per_s: best('emmett') };
    for (const c of CLIENTS) {
      metrics[`${c}_append_events_per_s`] = best(c);
      metrics[`${c}_vs_emmett`] = round(median(ratios(c)), 2);
      metrics[`${c}_cpu_us_per_event`] = round(median(cpuUs[c]!), 1);
    }
    report({
      name: 'append',
      params: { ...runInfo.params(), backends: 'Kafka 4.1, PostgreSQL on 127.0.0.1 (shared), both clients', clients: CLIENTS, events: CONVERSATIONS * EVENTS, batch: APPEND_BATCH, partitions: PARTITIONS, sealed: true, acks: 'all', peer: '@event-driven-io/emmett-postgresql 0.42 appendToStream, 50 events per stream, 4 streams side by side', peer_events: Math.min(PEER_STREAMS, CONVERSATIONS) * EVENTS, rounds: ROUNDS, figure: 'best round of each; ratio: median of the rounds\' ratios' },
      metrics,
      table: [
        ...CLIENTS.map((c): [string, string, string] => [`append on ${c} (batches of ${APPEND_BATCH}, 12 partitions side by side, acks=all): best round; ratio to Emmett in the same round, median (each round)`, `${metrics[`${c}_append_events_per_s`]!.toLocaleString('en-US')} events/s; ${metrics[`${c}_vs_emmett`]}× Emmett (${ratios(c).map((x) => x.toFixed(2)).join(', ')})`, '≥ 3× Emmett']),
        ...CLIENTS.map((c): [string, string, string] => [`  CPU per event of this process on ${c} (median round)`, `${metrics[`${c}_cpu_us_per_event`]} µs`, '']),
        ['peer: Emmett appendToStream to PostgreSQL', `${metrics.peer_emmett_append_events_per_s!.toLocaleString('en-US')} events/s`, '(peer)'],
        ['machine load (1-min average) at start / end', `${runInfo.loadStart} / ${loadNow()}`, '(2 cores, shared)'],
      ],
    });
  } finally {
    const problems = await scope.close();
    log(problems.length ? `clean-up problems: ${problems.join('; ')}` : `cleaned up ${scope.namespace}*`);
  }
}
