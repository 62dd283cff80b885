// The soak: all roles in one process (`gemello serve`) on real Kafka, PostgreSQL and Redis.
// 20 sockets keep one conversation each and prompt without pause; new conversations of a few
// prompts arrive beside them (one a second: the long ones get most of the load). It runs at
// least BENCH_SOAK_SECONDS (600) and until every long conversation has passed
// BENCH_SOAK_TARGET_PROMPTS (3,000), but no longer than BENCH_SOAK_MAX_SECONDS (1,500): a run
// that ends there reports the miss. The process's RSS and heap are sampled every few seconds
// and drawn in bench/results/soak.svg (bench/soak-summary.ts). Memory is flat when the mean of
// the last third of the run is within 10% of the middle third's; no prompt may fail (an error
// frame, or no reply in 30 s).
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { Redis } from 'ioredis';
import { startFakeOpenAI } from '../test/support/fake-openai.ts';
import { DATABASE_URL, KAFKA_BROKERS, REDIS_URL, realEnv } from '../test/support/env.ts';
import { KAFKA_CLIENT } from '../test/support/kafka.ts';
import { fakeModelEnv, freePort, startGemello } from '../test/support/processes.ts';
import { connect } from '../test/support/ws-client.ts';
import { cleanUp, onInterrupt } from './cleanup.ts';
import { round, startRun } from './report.ts';
import { summarize } from './soak-summary.ts';
import type { Sample } from './soak-summary.ts';

const MIN_SECONDS = Number(process.env.BENCH_SOAK_SECONDS ?? 600);
const MAX_SECONDS = Math.max(MIN_SECONDS, Number(process.env.BENCH_SOAK_MAX_SECONDS ?? 1500));
const TARGET = Number(process.env.BENCH_SOAK_TARGET_PROMPTS ?? 3000);
const LONG = Number(process.env.BENCH_SOAK_CONVERSATIONS ?? 20);
/** A new conversation of NEW_PROMPTS prompts starts this often. */
const NEW_EVERY_MS = Number(process.env.BENCH_SOAK_NEW_EVERY_MS ?? 1000);
const NEW_PROMPTS = Number(process.env.BENCH_SOAK_NEW_PROMPTS ?? 5);
const SAMPLE_MS = Number(process.env.BENCH_SOAK_SAMPLE_MS ?? 5000);
/** Seconds into the run at which the process writes a heap snapshot (SIGUSR2) into BENCH_SOAK_HEAP_DIR, e.g. "60,180". */
const HEAP_AT = (process.env.BENCH_SOAK_HEAP_AT ?? '').split(',').filter(Boolean).map(Number);
const HEAP_DIR = process.env.BENCH_SOAK_HEAP_DIR ?? '/tmp';
const REPLY_MS = 30_000;
/** The actor host's lease as deployed (GEMELLO_LEASE_MS unset: the default, 400 ms), unless the environment sets it. */
const LEASE_MS = process.env.GEMELLO_LEASE_MS;
/** BENCH_SOAK_SPEECH=on: every reply owes its speech (the fake's OpenAI speech), pending work beside the next prompt; off by default. */
const SPEECH = (process.env.BENCH_SOAK_SPEECH ?? 'off') === 'on';
const seed = { digitalTwinId: 'warren-buffett-001', digitalTwinName: 'Warren Buffett' };

/** VmRSS of a process, in MiB. */
function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

/** Every gauge in a Prometheus text, by `name{labels}`. */
function gauges(text: string): Record<string, number> {
  const names = new Set([...text.matchAll(/^# TYPE (\S+) gauge$/gm)].map((m) => m[1]!));
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const sp = line.lastIndexOf(' ');
    const series = line.slice(0, sp);
    const name = series.split('{')[0]!;
    if (names.has(name)) out[series] = Number(line.slice(sp + 1));
  }
  return out;
}

export async function run(): Promise<void> {
  const runInfo = startRun();
  const real = realEnv('soak');
  const fake = await startFakeOpenAI({ keep: 10 });
  const port = await freePort();
  const leftovers = { brokers: KAFKA_BROKERS, namespace: real.namespace, redisUrl: REDIS_URL, databaseUrl: DATABASE_URL, schemas: [real.schema] };
  const heapArgs = HEAP_AT.length ? ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${HEAP_DIR}`] : [];
  if (heapArgs.length) process.env.GEMELLO_CHILD_NODE_ARGS = [process.env.GEMELLO_CHILD_NODE_ARGS ?? '', ...heapArgs].join(' ').trim();
  const gemello = await startGemello(['serve'], { ...real.env, ...fakeModelEnv(fake), GEMELLO_SPEECH: SPEECH ? 'on' : 'off', PORT: String(port), GEMELLO_RATE_PER_SEC: '100000', GEMELLO_RATE_BURST: '100000', GEMELLO_LOG_QUIET: '1', ...(LEASE_MS !== undefined ? { GEMELLO_LEASE_MS: LEASE_MS } : {}) });
  const disarm = onInterrupt(async () => {
    await gemello.kill('SIGKILL');
    await fake.close();
    await cleanUp(leftovers);
  });
  const pid = gemello.child.pid!;
  const t0 = Date.now();
  const latencies: Array<[number, number]> = [];
  const failures: string[] = [];
  let prompts = 0;
  const longIds: string[] = [];
  const perLong: number[] = Array.from({ length: LONG }, () => 0);
  let reachedAt: number | null = null;
  let over = false;
  /** Whether the run goes on: under the minimum, or some long conversation short of the target, and under the maximum. */
  const going = (): boolean => {
    if (over) return false;
    const s = (Date.now() - t0) / 1000;
    if (reachedAt === null && perLong.every((n) => n >= TARGET)) reachedAt = Math.round(s);
    over = s >= MAX_SECONDS || (s >= MIN_SECONDS && reachedAt !== null);
    return !over;
  };

  async function prompt(client: Awaited<ReturnType<typeof connect>>, text: string, conversationId?: string): Promise<string | null> {
    const started = performance.now();
    client.send({ ...seed, prompt: text, ...(conversationId ? { conversationId } : {}) });
    try {
      const f = await client.next((x) => x.type === 'reply' || x.type === 'error', REPLY_MS);
      if (f.type === 'error') {
        failures.push(`${f.code}: ${f.error}`);
        return null;
      }
      prompts++;
      latencies.push([(Date.now() - t0) / 1000, performance.now() - started]);
      return f.conversationId as string;
    } catch (err) {
      failures.push((err as Error).message.slice(0, 200));
      return null;
    }
  }

  async function longConversation(i: number): Promise<void> {
    const client = await connect(`ws://127.0.0.1:${port}/ws`);
    let id: string | undefined;
    while (going()) {
      const got = await prompt(client, `long conversation ${i}, prompt ${perLong[i]}: how do you think about a company's moat over decades?`, id);
      if (got) {
        id ??= got;
        longIds[i] = got;
        perLong[i]!++;
      } else if (client.closed()) break;
    }
    client.close();
  }

  async function newConversations(): Promise<void> {
    const running = new Set<Promise<void>>();
    for (let k = 0; going(); k++) {
      const p = (async () => {
        const client = await connect(`ws://127.0.0.1:${port}/ws`);
        let id: string | undefined;
        for (let j = 0; j < NEW_PROMPTS && going(); j++) id = (await prompt(client, `short conversation ${k}, prompt ${j}`, id)) ?? id;
        client.close();
      })().catch((err) => void failures.push(`new conversation: ${(err as Error).message}`));
      running.add(p);
      void p.finally(() => running.delete(p));
      await new Promise((r) => setTimeout(r, NEW_EVERY_MS));
    }
    await Promise.all(running);
  }

  const samples: Sample[] = [];
  const heapsWritten: number[] = [];
  /** Sampling problems: not failed prompts, but reported. */
  const sampleErrors: string[] = [];
  async function sampleLoop(): Promise<void> {
    while (going()) {
      const t = (Date.now() - t0) / 1000;
      const load = round(loadavg()[0]!, 2);
      try {
        const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
        const g = gauges(text);
        const heap = g['gemello_process_heap_used_bytes'];
        samples.push({ t: round(t, 1), rssMiB: round(rssOf(pid), 1), heapMiB: heap === undefined ? null : round(heap / 2 ** 20, 1), prompts, load, gauges: g });
      } catch (err) {
        samples.push({ t: round(t, 1), rssMiB: round(rssOf(pid), 1), heapMiB: null, prompts, load, gauges: {} });
        sampleErrors.push(`metrics: ${(err as Error).message}`);
      }
      for (const at of HEAP_AT) {
        if (t >= at && !heapsWritten.includes(at)) {
          heapsWritten.push(at);
          process.kill(pid, 'SIGUSR2');
          console.log(`heap snapshot asked at ${Math.round(t)} s (rss ${round(rssOf(pid))} MiB) into ${HEAP_DIR}`);
        }
      }
      if (samples.length % 12 === 0) console.log(`${Math.round(t)} s: ${prompts} prompts, rss ${samples.at(-1)!.rssMiB} MiB, heap ${samples.at(-1)!.heapMiB} MiB, ${failures.length} failures, long conversations ${Math.min(...perLong)}–${Math.max(...perLong)} prompts, load ${load}`);
      await new Promise((r) => setTimeout(r, SAMPLE_MS));
    }
  }

  let snapshotBytes = 0;
  try {
    await Promise.all([...Array.from({ length: LONG }, (_, i) => longConversation(i)), newConversations(), sampleLoop()]);
    const redis = new Redis(REDIS_URL);
    try {
      const sizes = await Promise.all(longIds.filter(Boolean).map((id) => redis.strlen(`${real.namespace}gemello:snapshot:${id}`)));
      snapshotBytes = Math.max(0, ...sizes);
    } finally {
      redis.disconnect();
    }
  } finally {
    await gemello.kill();
    await fake.close();
    const problems = await cleanUp(leftovers);
    disarm();
    if (problems.length) console.log(`clean-up problems: ${problems.join('; ')}`);
  }

  summarize({
    params: { ...runInfo.params(), backends: `Kafka 4.1 (${KAFKA_CLIENT}), PostgreSQL, Redis on 127.0.0.1`, roles: 'gateway, actors, projections in one process', long_conversations: LONG, target_prompts: TARGET, min_seconds: MIN_SECONDS, max_seconds: MAX_SECONDS, new_conversation_every_ms: NEW_EVERY_MS, new_conversation_prompts: NEW_PROMPTS, sample_ms: SAMPLE_MS, model: 'fake OpenAI-compatible server, zero latency', speech: SPEECH ? 'fake OpenAI speech' : 'off', lease_ms: LEASE_MS === undefined ? 'default (400)' : Number(LEASE_MS), plot: 'bench/results/soak.svg', samples: 'bench/results/soak-samples.json' },
    samples, latencies, failures, sampleErrors, prompts, perLong, longConversations: LONG, target: TARGET, minSeconds: MIN_SECONDS, maxSeconds: MAX_SECONDS, reachedAt, snapshotBytes,
  });
}
