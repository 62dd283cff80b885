// The prompt path's cost and speed, both Kafka clients and both runtimes in one run: CPU time
// per prompt of each gemello process, sustained prompts/s and p95 at 500 concurrent
// conversations, and p50 at one conversation, on real Kafka, PostgreSQL and Redis with a
// zero-latency OpenAI-compatible fake (in a process of its own, its CPU reported apart).
//
//   Setups (BENCH_SETUPS, all by default): `node-platformatic` and `node-kafkajs` run the
//   gateway, the actor host and the projections as three processes of the real CLI;
//   `node-serve` and `deno-serve` run all three roles in one process (`gemello serve`, and
//   `main.deno.ts` on Deno), default client. Per setup: BENCH_PROMPTS (300) prompts at one
//   conversation after BENCH_WARMUP (200) warm-up ones, in 3 rounds a second apart (p50 over
//   all, and the best round's), then BENCH_CONCURRENT (500) conversations for
//   BENCH_SECONDS (10) s after 2 warm-up prompts each, each sending its next prompt when the
//   reply came (a closed loop: it measures the most the setup serves, and its p95 is the queue
//   500 sockets build, ≈ 500 ÷ prompts/s); then the same number of conversations offering
//   BENCH_PACED_RATE (500) prompts a second together for BENCH_SECONDS, each on its own
//   schedule (an open loop: the p95 of the path at that load; bench/paced.ts). CPU is each
//   process's user + system time over the timed closed-loop stretch (from /proc) ÷ the replies in it.
//   GEMELLO_CHILD_NODE_ARGS (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`) reaches the Node processes.
import { execFileSync, fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startFakeOpenAI } from '../test/support/fake-openai.ts';
import { DATABASE_URL, KAFKA_BROKERS, REDIS_URL, realEnv } from '../test/support/env.ts';
import { freePort, startCommand, startGemello } from '../test/support/processes.ts';
import type { Gemello } from '../test/support/processes.ts';
import { cleanUp, onInterrupt } from './cleanup.ts';
import { runLevel } from './conversations.ts';
import { runPaced } from './paced.ts';
import { busyBetween, cpuSeconds, machineTicks, secondsBetween, servicePids, ticksOf } from './proc-cpu.ts';
import { loadNow, percentile, report, round, startRun } from './report.ts';

const env = process.env;
const PROMPTS_1 = Number(env.BENCH_PROMPTS ?? 300);
const CONCURRENT = Number(env.BENCH_CONCURRENT ?? 500);
const SECONDS = Number(env.BENCH_SECONDS ?? 10);
// The open loop: the same number of conversations offering this many prompts a second together
// (500: one a second each, below what every setup serves on two cores).
const PACED_RATE = Number(env.BENCH_PACED_RATE ?? 500);
// Warm-up at one conversation: a setup's processes (and, for a run's first setup, the fake model)
// have just started, and V8 optimises the path only after its first hundred or so prompts; with
// 20 the run's first setup read higher than the same setup run again.
const WARMUP_1 = Number(env.BENCH_WARMUP ?? 200);
const ROUNDS_1 = 3;
const PARTITIONS = 12;
const SETUPS = ['node-platformatic', 'node-kafkajs', 'node-serve', 'deno-serve'] as const;
type Setup = (typeof SETUPS)[number];
const CHOSEN = (env.BENCH_SETUPS ?? SETUPS.join(',')).split(',').filter(Boolean) as Setup[];
const SELF = fileURLToPath(import.meta.url);
const DENO = fileURLToPath(new URL('../node_modules/.bin/deno', import.meta.url));
const DENO_MAIN = fileURLToPath(new URL('../main.deno.ts', import.meta.url));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
// The monotonic clock in µs (mono=…) is the one `--cpu-prof` stamps its samples with, so a profile can be cut by phase.
const log = (msg: string) => console.log(`[prompt-path ${new Date().toISOString().slice(11, 19)} mono=${process.hrtime.bigint() / 1000n}] ${msg}`);

type Result = {
  setup: Setup;
  p50_1: number;
  /** The lowest p50 of the rounds at one conversation. */
  p50_1_best: number;
  p95_1: number;
  perSecond: number;
  p50_n: number;
  p95_n: number;
  /** The open loop at PACED_RATE: latency from each prompt's due time. */
  paced: { p50: number; p95: number; p99: number; perSecond: number; late: number; errors: number; cpuUs: number; roles: Record<string, number>; busy: number };
  errors: number;
  replies: number;
  /** µs of CPU per reply, per process role. */
  cpu: Record<string, number>;
  fakeCpuUs: number;
  /** µs of CPU per reply of this benchmark's own client process (500 sockets). */
  clientCpuUs: number;
  /** µs per reply of the shared services' processes over the same stretch (others' use included). */
  services: Record<string, number>;
  load: number;
};

/** The fake model in a child process of this file, so its CPU is not the bench's or gemello's. */
function startFakeProcess(): Promise<{ child: ChildProcess; url: string }> {
  const child = fork(SELF, ['--fake-openai'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    child.once('message', (m: { url: string }) => resolve({ child, url: m.url }));
    child.once('exit', (code) => reject(new Error(`fake model exited (${code})`)));
  });
}

async function startSetup(setup: Setup, base: Record<string, string>, port: number): Promise<Record<string, Gemello>> {
  const started: Record<string, Gemello> = {};
  try {
    if (setup === 'deno-serve') {
      started.serve = await startCommand(DENO, ['run', '--allow-env', '--allow-net', '--allow-read', '--allow-write', '--allow-run', '--allow-sys', DENO_MAIN], { ...base, GEMELLO_LOG_QUIET: '0', PORT: String(port) });
    } else if (setup === 'node-serve') {
      started.serve = await startGemello(['serve'], { ...base, PORT: String(port) });
    } else {
      const client = { GEMELLO_KAFKA_CLIENT: setup === 'node-kafkajs' ? 'kafkajs' : 'platformatic' };
      started.gateway = await startGemello(['gateway'], { ...base, ...client, PORT: String(port) });
      started.actors = await startGemello(['actors'], { ...base, ...client });
      // BENCH_WITHOUT_PROJECTIONS=1: gateway and actor host alone, to see what the projector's share of the machine costs the prompt.
      if (env.BENCH_WITHOUT_PROJECTIONS !== '1') started.projections = await startGemello(['projections'], { ...base, ...client });
      const a = started.actors;
      await a.waitFor(() => a.owned().length === PARTITIONS, 'the actor host to own every partition', 60_000);
    }
    return started;
  } catch (err) {
    await Promise.all(Object.values(started).map((p) => p.kill('SIGKILL')));
    throw err;
  }
}

async function runSetup(setup: Setup, fake: { child: ChildProcess; url: string }, track: Array<() => Promise<void>>): Promise<Result> {
  const { namespace, schema, env: real } = realEnv('benchpp');
  const base = { ...real, GEMELLO_PARTITIONS: String(PARTITIONS), OPENAI_API_KEY: 'bench', OPENAI_BASE_URL: fake.url, GEMELLO_SPEECH: 'off', GEMELLO_RATE_PER_SEC: '100000', GEMELLO_RATE_BURST: '100000', GEMELLO_LOG_QUIET: '1' };
  const leftovers = { brokers: KAFKA_BROKERS, namespace, redisUrl: REDIS_URL, databaseUrl: DATABASE_URL, schemas: [schema] };
  const port = await freePort();
  const procs = await startSetup(setup, base, port);
  const stopAll = async () => {
    await Promise.all(Object.values(procs).map((p) => p.kill()));
  };
  track.push(stopAll);
  try {
    const url = `ws://127.0.0.1:${port}/ws`;
    log(`${setup}: 1 conversation, ${PROMPTS_1} prompts in ${ROUNDS_1} rounds`);
    // Generous time for the first prompts: a serve process may still be joining its group.
    // Rounds a second apart: on a shared machine one round may catch a quieter stretch than another.
    const rounds: number[][] = [];
    let errors1 = 0;
    for (let i = 0; i < ROUNDS_1; i++) {
      const round1 = await runLevel(url, 1, Math.ceil(PROMPTS_1 / ROUNDS_1), 120, i === 0 ? WARMUP_1 : 2);
      rounds.push(round1.latencies);
      errors1 += round1.errors;
      if (i < ROUNDS_1 - 1) await sleep(1_000);
    }
    const one = { latencies: rounds.flat(), errors: errors1 };
    const bestRound = Math.min(...rounds.map((r) => percentile(r, 50)));
    await sleep(1_000);
    log(`${setup}: ${CONCURRENT} conversations, ${SECONDS} s`);
    const before: Record<string, number> = {};
    const servicesBefore: Record<string, Map<number, number>> = {};
    const pids = servicePids();
    let fakeBefore = 0;
    let clientBefore = process.cpuUsage();
    const n = await runLevel(url, CONCURRENT, Number.MAX_SAFE_INTEGER, SECONDS, 2, () => {
      for (const [role, p] of Object.entries(procs)) before[role] = cpuSeconds(p.child.pid!);
      for (const [name, list] of Object.entries(pids)) servicesBefore[name] = ticksOf(list);
      fakeBefore = cpuSeconds(fake.child.pid!);
      clientBefore = process.cpuUsage();
    });
    const perReply = (seconds: number) => round((seconds * 1e6) / Math.max(1, n.completed), 0);
    const client = process.cpuUsage(clientBefore);
    const cpu: Record<string, number> = {};
    for (const [role, p] of Object.entries(procs)) cpu[role] = perReply(cpuSeconds(p.child.pid!) - before[role]!);
    const services: Record<string, number> = {};
    for (const [name, list] of Object.entries(pids)) services[name] = perReply(secondsBetween(servicesBefore[name]!, ticksOf(list)));
    const fakeCpuUs = perReply(cpuSeconds(fake.child.pid!) - fakeBefore);
    const clientCpuUs = perReply((client.user + client.system) / 1e6);
    // The CPU above is the closed loop's alone; the open loop comes after it.
    await sleep(1_000);
    log(`${setup}: ${CONCURRENT} conversations offering ${PACED_RATE} prompts/s, ${SECONDS} s`);
    // The open loop's own CPU: gemello's per prompt at that pace, and how busy the whole machine was (a tail that grows while cores are idle is not CPU).
    const pacedBefore: Record<string, number> = {};
    let machineBefore = machineTicks();
    const p = await runPaced(url, CONCURRENT, PACED_RATE, SECONDS, () => {
      for (const [role, q] of Object.entries(procs)) pacedBefore[role] = cpuSeconds(q.child.pid!);
      machineBefore = machineTicks();
    });
    const machineBusy = busyBetween(machineBefore, machineTicks());
    const pacedRoles: Record<string, number> = {};
    for (const [role, q] of Object.entries(procs)) pacedRoles[role] = round(((cpuSeconds(q.child.pid!) - pacedBefore[role]!) * 1e6) / Math.max(1, p.completed), 0);
    const pacedCpu = Object.values(pacedRoles).reduce((a, b) => a + b, 0);
    const paced = { p50: round(percentile(p.latencies, 50), 2), p95: round(percentile(p.latencies, 95), 2), p99: round(percentile(p.latencies, 99), 2), perSecond: Math.round(p.completed / p.seconds), late: p.late, errors: p.errors, cpuUs: pacedCpu, roles: pacedRoles, busy: round(machineBusy * 100, 0) };
    const r: Result = {
      setup,
      p50_1: round(percentile(one.latencies, 50), 2),
      p50_1_best: round(bestRound, 2),
      p95_1: round(percentile(one.latencies, 95), 2),
      perSecond: Math.round(n.completed / n.seconds),
      p50_n: round(percentile(n.latencies, 50), 1),
      p95_n: round(percentile(n.latencies, 95), 1),
      paced,
      errors: one.errors + n.errors + p.errors,
      replies: n.completed,
      cpu,
      fakeCpuUs,
      clientCpuUs,
      services,
      load: loadNow(),
    };
    const total = Object.values(cpu).reduce((a, b) => a + b, 0);
    log(`${setup}: p50 at 1 ${r.p50_1} ms (best round ${r.p50_1_best}); ${r.perSecond} prompts/s at ${CONCURRENT}, p95 ${r.p95_n} ms; at ${PACED_RATE}/s offered p50 ${paced.p50}, p95 ${paced.p95}, p99 ${paced.p99} ms (${paced.perSecond}/s served, ${paced.late} late, ${paced.cpuUs} µs a prompt (${Object.entries(paced.roles).map(([k, v]) => `${k} ${v}`).join(', ')}), machine ${paced.busy} % busy); ${r.errors} errors; CPU per prompt ${total} µs (${Object.entries(cpu).map(([k, v]) => `${k} ${v}`).join(', ')}), fake model ${fakeCpuUs} µs, bench client ${clientCpuUs} µs; shared services ${Object.entries(services).map(([k, v]) => `${k} ${v}`).join(', ')} µs; load ${r.load}`);
    return r;
  } finally {
    await stopAll();
    track.splice(track.indexOf(stopAll), 1);
    const problems = await cleanUp(leftovers);
    if (problems.length) log(`clean-up problems: ${problems.join('; ')}`);
  }
}

export async function run(): Promise<void> {
  const bad = CHOSEN.filter((s) => !SETUPS.includes(s));
  if (bad.length) throw new Error(`unknown BENCH_SETUPS ${bad.join(', ')}; choose from ${SETUPS.join(', ')}`);
  const fake = await startFakeProcess();
  const track: Array<() => Promise<void>> = [];
  const disarm = onInterrupt(async () => {
    await Promise.all(track.map((f) => f()));
    fake.child.kill('SIGKILL');
  });
  const runInfo = startRun();
  const results: Result[] = [];
  try {
    for (const setup of CHOSEN) results.push(await runSetup(setup, fake, track));
  } finally {
    fake.child.kill('SIGTERM');
    disarm();
  }
  const metrics: Record<string, number> = {};
  const table: Array<[string, string, string]> = [];
  for (const r of results) {
    const k = r.setup.replace(/-/g, '_');
    const total = Object.values(r.cpu).reduce((a, b) => a + b, 0);
    metrics[`${k}_cpu_us_per_prompt`] = total;
    for (const [role, us] of Object.entries(r.cpu)) metrics[`${k}_cpu_us_${role}`] = us;
    metrics[`${k}_fake_model_cpu_us`] = r.fakeCpuUs;
    metrics[`${k}_bench_client_cpu_us`] = r.clientCpuUs;
    for (const [name, us] of Object.entries(r.services)) metrics[`${k}_shared_${name}_cpu_us`] = us;
    metrics[`${k}_prompts_per_s`] = r.perSecond;
    metrics[`${k}_p50_ms_1`] = r.p50_1;
    metrics[`${k}_p50_ms_1_best_round`] = r.p50_1_best;
    metrics[`${k}_p95_ms_1`] = r.p95_1;
    metrics[`${k}_p50_ms_${CONCURRENT}`] = r.p50_n;
    metrics[`${k}_p95_ms_${CONCURRENT}`] = r.p95_n;
    metrics[`${k}_paced_${PACED_RATE}_p50_ms`] = r.paced.p50;
    metrics[`${k}_paced_${PACED_RATE}_p95_ms`] = r.paced.p95;
    metrics[`${k}_paced_${PACED_RATE}_p99_ms`] = r.paced.p99;
    metrics[`${k}_paced_${PACED_RATE}_served_per_s`] = r.paced.perSecond;
    metrics[`${k}_paced_${PACED_RATE}_late`] = r.paced.late;
    metrics[`${k}_paced_${PACED_RATE}_cpu_us_per_prompt`] = r.paced.cpuUs;
    for (const [role, us] of Object.entries(r.paced.roles)) metrics[`${k}_paced_${PACED_RATE}_cpu_us_${role}`] = us;
    metrics[`${k}_paced_${PACED_RATE}_machine_busy_pct`] = r.paced.busy;
    metrics[`${k}_errors`] = r.errors;
    metrics[`${k}_load_average`] = r.load;
    const parts = Object.entries(r.cpu).map(([role, us]) => `${role} ${us}`).join(' + ');
    table.push([`${r.setup}: CPU per prompt (${parts}; fake model ${r.fakeCpuUs} apart)`, `${total} µs`, '≤ 200 µs']);
    table.push([`${r.setup}: beside it per prompt: fake model ${r.fakeCpuUs}, bench client ${r.clientCpuUs}; shared (others' use included) ${Object.entries(r.services).map(([k, v]) => `${k} ${v}`).join(', ')}`, `${r.fakeCpuUs + r.clientCpuUs + Object.values(r.services).reduce((a, b) => a + b, 0)} µs`, '']);
    table.push([`${r.setup}: sustained prompts/s at ${CONCURRENT} concurrent (${r.replies} replies, ${r.errors} errors)`, `${r.perSecond}`, '≥ 5,000']);
    table.push([`${r.setup}: p50 at 1 conversation (best of ${ROUNDS_1} rounds; p95)`, `${r.p50_1} ms (${r.p50_1_best}; ${r.p95_1})`, '< 5 ms']);
    table.push([`${r.setup}: p95 at ${CONCURRENT} concurrent, closed loop (p50)`, `${r.p95_n} ms (${r.p50_n})`, '< 20 ms']);
    table.push([`${r.setup}: p95 at ${CONCURRENT} concurrent offering ${PACED_RATE} prompts/s, open loop (p50; p99; served/s; prompts due behind an unanswered one; gemello's CPU a prompt; machine busy)`, `${r.paced.p95} ms (${r.paced.p50}; ${r.paced.p99}; ${r.paced.perSecond}; ${r.paced.late}; ${r.paced.cpuUs} µs; ${r.paced.busy} %)`, '< 20 ms']);
  }
  table.push(['machine load (1-min average) at start / end', `${runInfo.loadStart} / ${loadNow()}`, '(2 cores, shared)']);
  report({
    name: 'prompt-path',
    params: {
      setups: CHOSEN,
      prompts_at_1: PROMPTS_1,
      warmup_at_1: WARMUP_1,
      concurrent: CONCURRENT,
      seconds: SECONDS,
      paced_rate: PACED_RATE,
      partitions: PARTITIONS,
      model: 'fake OpenAI-compatible server, zero latency, own process',
      deno: CHOSEN.includes('deno-serve') ? execFileSync(DENO, ['--version'], { encoding: 'utf8' }).split('\n')[0] : undefined,
      speech: 'off',
      ...runInfo.params(),
      backends: 'Kafka 4.1, PostgreSQL, Redis on 127.0.0.1',
    },
    metrics,
    table,
  });
}

if (process.argv[2] === '--fake-openai') {
  const fake = await startFakeOpenAI({ keep: 100 });
  process.send?.({ url: fake.url });
  const close = () => void fake.close().finally(() => process.exit(0));
  process.on('SIGTERM', close);
  process.on('disconnect', close);
}
