// Prompt → reply over WebSocket at 1, 100 and 500 concurrent conversations on real Kafka
// with a zero-latency OpenAI-compatible model, and the most idle sockets one gateway
// process holds with its memory per socket.
//
//   The app runs as child processes of the real CLI: one `gateway`, one `actors`, one
//   `projections` (GEMELLO_SPEECH=off, rate limits raised). Each conversation is one socket
//   that sends its next prompt when the reply came. BENCH_PROMPTS (300) prompts at 1
//   conversation; BENCH_GATEWAY_SECONDS (15) s per level at 100 and 500 (BENCH_LEVELS);
//   BENCH_SOCKETS (10000) idle sockets within BENCH_SOCKETS_SECONDS (90) s, opened by two
//   client processes against a fresh `gateway` process. BENCH_GATEWAY_ONLY=sockets runs
//   only the socket part: it prints its figures and writes no results file. With
//   BENCH_SOCKETS_FRAME each idle socket first sends that text frame once (e.g. `hello`,
//   answered with an error frame), so that it holds a session.
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { isEventRecord } from '../events/codec.ts';
import { createKafkaLog } from '../log/kafka.ts';
import { partitionFor } from '../log/partition.ts';
import { TOPICS } from '../log/port.ts';
import { startFakeOpenAI } from '../test/support/fake-openai.ts';
import { DATABASE_URL, KAFKA_BROKERS, REDIS_URL, realEnv } from '../test/support/env.ts';
import { freePort, startGemello } from '../test/support/processes.ts';
import type { Gemello } from '../test/support/processes.ts';
import { cleanUp, onInterrupt } from './cleanup.ts';
import { runLevel } from './conversations.ts';
import type { Level } from './conversations.ts';
import { loadNow, percentile, report, round, startRun } from './report.ts';

const env = process.env;
const PROMPTS_1 = Number(env.BENCH_PROMPTS ?? 300);
const SECONDS = Number(env.BENCH_GATEWAY_SECONDS ?? 15);
const LEVELS = (env.BENCH_LEVELS ?? '1,100,500').split(',').map(Number);
const SOCKETS = Number(env.BENCH_SOCKETS ?? 10_000);
const SOCKETS_SECONDS = Number(env.BENCH_SOCKETS_SECONDS ?? 90);
const SOCKETS_ONLY = env.BENCH_GATEWAY_ONLY === 'sockets';
const SOCKETS_FRAME = env.BENCH_SOCKETS_FRAME ?? '';
const PARTITIONS = 12;
/** Prompts per socket not timed: the first creates the conversation (and activates its actor). */
const WARMUP_PER_SOCKET = 2;
const WARMUP_1 = 20;
const SELF = fileURLToPath(import.meta.url);

const now = () => performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (msg: string) => console.log(`[gateway ${new Date().toISOString().slice(11, 19)}] ${msg}`);

/**
 * Where one conversation's prompt → reply time goes, from the records' timestamps (the
 * producer's clock at send, ms) and the client's clock: the gateway until it produces the
 * command; the command's produce and the actors' consumer hop until the PromptReceived is
 * produced; its produce, the model call and the actor until the ReplyGenerated is produced;
 * its produce, the gateway's consumer hop and the socket until the client has the reply.
 */
async function breakdown(baseEnv: Record<string, string>, traced: Level['traced']) {
  const kafkaLog = createKafkaLog({ brokers: KAFKA_BROKERS, partitions: PARTITIONS, namespace: baseEnv.GEMELLO_NAMESPACE, clientId: 'gemello-bench-breakdown' });
  try {
    const p = partitionFor(traced.conversationId, PARTITIONS);
    const commandAt = new Map<string, number>();
    const promptAt = new Map<string, { ts: number; seq: number }>();
    const replyAt = new Map<number, number>();
    const replyInfo = new Map<number, { occurredAt: number; modelMs: number }>();
    await kafkaLog.read(TOPICS.commands, p, 0, (records) => {
      for (const r of records) {
        if (r.key !== traced.conversationId) continue;
        const c = JSON.parse(r.value) as { correlationId: string | null };
        if (c.correlationId) commandAt.set(c.correlationId, r.timestamp);
      }
    });
    await kafkaLog.read(TOPICS.events, p, 0, (records) => {
      for (const r of records) {
        if (r.key !== traced.conversationId || !isEventRecord(r)) continue;
        const e = JSON.parse(r.value) as { type: string; seq: number; occurredAt: string; data: { requestId?: string | null; promptSeq?: number; latencyMs?: number } };
        if (e.type === 'PromptReceived' && e.data.requestId) promptAt.set(e.data.requestId, { ts: r.timestamp, seq: e.seq });
        if (e.type === 'ReplyGenerated' && e.data.promptSeq) {
          replyAt.set(e.data.promptSeq, r.timestamp);
          replyInfo.set(e.data.promptSeq, { occurredAt: Date.parse(e.occurredAt), modelMs: e.data.latencyMs ?? 0 });
        }
      }
    });
    const parts = { gateway: [] as number[], command: [] as number[], prompt: [] as number[], reply: [] as number[], model: [] as number[], beforeModel: [] as number[], afterModel: [] as number[] };
    for (const [rid, t] of traced.trace) {
      const c = commandAt.get(rid);
      const pr = promptAt.get(rid);
      const rp = pr ? replyAt.get(pr.seq) : undefined;
      if (c === undefined || !pr || rp === undefined) continue;
      parts.gateway.push(c - t.sent);
      parts.command.push(pr.ts - c);
      parts.prompt.push(rp - pr.ts);
      parts.reply.push(t.received - rp);
      const info = replyInfo.get(pr.seq)!;
      parts.model.push(info.modelMs);
      // From the PromptReceived's send to the ReplyGenerated's envelope, less the model call: its ack and the actor's own work.
      parts.beforeModel.push(info.occurredAt - pr.ts - info.modelMs);
      parts.afterModel.push(rp - info.occurredAt);
    }
    const mean = (xs: number[]) => round(percentile(xs, 50), 2);
    return { samples: parts.gateway.length, gateway: mean(parts.gateway), command: mean(parts.command), prompt: mean(parts.prompt), reply: mean(parts.reply), model: mean(parts.model), promptAck: mean(parts.beforeModel), replySend: mean(parts.afterModel) };
  } finally {
    await kafkaLog.close();
  }
}

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

async function metric(port: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(name));
  return line ? Number(line.split(/\s+/).pop()) : NaN;
}

/** A child process of this file in one of its helper modes; resolves with its first message. */
function helper(args: string[]): { child: ChildProcess; first: Promise<Record<string, unknown>>; messages: Record<string, unknown>[] } {
  const child = fork(SELF, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const messages: Record<string, unknown>[] = [];
  const first = new Promise<Record<string, unknown>>((resolve, reject) => {
    child.on('message', (m: Record<string, unknown>) => {
      messages.push(m);
      resolve(m);
    });
    child.once('exit', (code) => reject(new Error(`helper ${args[0]} exited (${code})`)));
  });
  return { child, first, messages };
}

const stop = async (c: ChildProcess | undefined) => {
  if (!c || c.exitCode !== null || c.signalCode !== null) return;
  const done = new Promise((r) => c.once('exit', r));
  c.kill('SIGTERM');
  await Promise.race([done, sleep(5_000)]);
  if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
};

/** The most idle sockets a fresh gateway process holds, and its RSS per socket. */
async function socketCapacity(baseEnv: Record<string, string>, track: Gemello[]) {
  const port = await freePort();
  const gw = await startGemello(['gateway'], { ...baseEnv, PORT: String(port) });
  track.push(gw);
  const clients: ChildProcess[] = [];
  try {
    await sleep(3_000); // past start-up work
    const before = rssBytes(gw.child.pid!);
    const url = `ws://127.0.0.1:${port}/ws`;
    const shares = [Math.ceil(SOCKETS / 2), Math.floor(SOCKETS / 2)];
    const t0 = now();
    const helpers = shares.map((n) => helper(['--socket-clients', url, String(n), String(SOCKETS_SECONDS), SOCKETS_FRAME]));
    clients.push(...helpers.map((h) => h.child));
    const progress = setInterval(() => {
      const opened = helpers.map((h) => Number(h.messages[h.messages.length - 1]?.opened ?? 0));
      log(`  sockets open: ${opened.reduce((a, b) => a + b, 0)} / ${SOCKETS}`);
    }, 5_000);
    let results: Record<string, unknown>[];
    try {
      results = await Promise.all(helpers.map((h) => new Promise<Record<string, unknown>>((resolve, reject) => {
        h.child.on('message', (m: Record<string, unknown>) => m.done && resolve(m));
        h.child.once('exit', (code) => reject(new Error(`socket client exited (${code})`)));
      })));
    } finally {
      clearInterval(progress);
    }
    const openMs = now() - t0;
    await sleep(3_000);
    const held = await metric(port, 'gemello_ws_sockets_open');
    const after = rssBytes(gw.child.pid!);
    const opened = results.reduce((a, r) => a + Number(r.opened), 0);
    const failed = results.reduce((a, r) => a + Number(r.failed), 0);
    const firstError = results.map((r) => r.firstError).find(Boolean);
    return { held: Number.isNaN(held) ? opened : held, opened, failed, firstError, before, after, openMs };
  } finally {
    await Promise.all(clients.map(stop));
    await gw.kill();
  }
}

export async function run(): Promise<void> {
  const { namespace, schema, env: realServices } = realEnv('benchgw');
  const fake = helper(['--fake-openai']);
  const fakeUrl = String((await fake.first).url);
  const baseEnv = {
    ...realServices,
    GEMELLO_PARTITIONS: String(PARTITIONS),
    OPENAI_API_KEY: 'bench',
    OPENAI_BASE_URL: fakeUrl,
    GEMELLO_SPEECH: 'off',
    GEMELLO_RATE_PER_SEC: '100000',
    GEMELLO_RATE_BURST: '100000',
    GEMELLO_LOG_QUIET: '1',
  };
  const procs: Gemello[] = [];
  const leftovers = { brokers: KAFKA_BROKERS, namespace, redisUrl: REDIS_URL, databaseUrl: DATABASE_URL, schemas: [schema] };
  const disarm = onInterrupt(async () => {
    await Promise.all(procs.map((p) => p.kill('SIGKILL')));
    await cleanUp(leftovers);
  });
  const run = startRun();
  log(`namespace ${namespace}, schema ${schema}; ${SOCKETS_ONLY ? 'sockets only' : `levels ${LEVELS.join(', ')}`}; ${SOCKETS} idle sockets`);
  try {
    if (SOCKETS_ONLY) {
      log(`idle sockets on a fresh gateway process (up to ${SOCKETS}, ${SOCKETS_SECONDS} s)`);
      const cap = await socketCapacity(baseEnv, procs);
      const perSocket = cap.held > 0 ? Math.round((cap.after - cap.before) / cap.held) : 0;
      log(`  held ${cap.held} (opened ${cap.opened}, failed ${cap.failed}${cap.firstError ? `, first error: ${String(cap.firstError)}` : ''}) in ${(cap.openMs / 1000).toFixed(1)} s; RSS ${Math.round(cap.before / 2 ** 20)} → ${Math.round(cap.after / 2 ** 20)} MiB`);
      log(`  memory per socket (RSS growth / sockets): ${(perSocket / 1024).toFixed(1)} KB (${perSocket} bytes; goal < 10 KB); load (1-min average) at start / end ${run.loadStart} / ${loadNow()}; no results file written`);
      return;
    }
    const port = await freePort();
    procs.push(await startGemello(['gateway'], { ...baseEnv, PORT: String(port) }));
    const actors = await startGemello(['actors'], baseEnv);
    procs.push(actors);
    procs.push(await startGemello(['projections'], baseEnv));
    await actors.waitFor(() => actors.owned().length === PARTITIONS, 'the actor host to own every partition', 60_000);
    const url = `ws://127.0.0.1:${port}/ws`;
    const levels: Level[] = [];
    for (const c of LEVELS) {
      log(`${c} concurrent conversation${c > 1 ? 's' : ''}`);
      const level = c === 1 ? await runLevel(url, 1, PROMPTS_1, Math.max(SECONDS, 120), WARMUP_1) : await runLevel(url, c, Number.MAX_SAFE_INTEGER, SECONDS, WARMUP_PER_SOCKET);
      levels.push(level);
      log(`  ${level.completed} replies in ${level.seconds.toFixed(1)} s (${Math.round(level.completed / level.seconds)}/s), p50 ${round(percentile(level.latencies, 50))} ms, p95 ${round(percentile(level.latencies, 95))} ms, p99 ${round(percentile(level.latencies, 99))} ms, ${level.errors} errors`);
      await sleep(2_000);
    }
    await Promise.all(procs.map((p) => p.kill()));
    procs.length = 0;
    const one = levels.find((l) => l.concurrency === 1);
    const split = one ? await breakdown(baseEnv, one.traced) : null;
    if (split) log(`  at 1 conversation, median ms: gateway → command produced ${split.gateway}; → PromptReceived produced ${split.command}; → ReplyGenerated produced ${split.prompt}; → client has the reply ${split.reply} (${split.samples} prompts); within the model segment: model call ${split.model}, PromptReceived ack + actor ${split.promptAck}, ReplyGenerated envelope → sent ${split.replySend}`);

    log(`idle sockets on a fresh gateway process (up to ${SOCKETS}, ${SOCKETS_SECONDS} s)`);
    const cap = await socketCapacity(baseEnv, procs);
    const perSocket = cap.held > 0 ? Math.round((cap.after - cap.before) / cap.held) : 0;
    log(`  held ${cap.held} (opened ${cap.opened}, failed ${cap.failed}${cap.firstError ? `, first error: ${String(cap.firstError)}` : ''}) in ${(cap.openMs / 1000).toFixed(1)} s; RSS ${Math.round(cap.before / 2 ** 20)} → ${Math.round(cap.after / 2 ** 20)} MiB`);

    const metrics: Record<string, number> = {};
    for (const l of levels) {
      metrics[`e2e_p50_ms_${l.concurrency}`] = round(percentile(l.latencies, 50));
      metrics[`e2e_p95_ms_${l.concurrency}`] = round(percentile(l.latencies, 95));
      metrics[`e2e_p99_ms_${l.concurrency}`] = round(percentile(l.latencies, 99));
      metrics[`prompts_per_s_${l.concurrency}`] = Math.round(l.completed / l.seconds);
      metrics[`errors_${l.concurrency}`] = l.errors;
    }
    metrics.sustained_prompts_per_s = Math.max(...levels.map((l) => Math.round(l.completed / l.seconds)));
    metrics.max_sockets = cap.held;
    metrics.bytes_per_socket = perSocket;
    metrics.gateway_rss_before_mib = round(cap.before / 2 ** 20, 1);
    metrics.gateway_rss_after_mib = round(cap.after / 2 ** 20, 1);
    metrics.sockets_open_s = round(cap.openMs / 1000, 1);
    if (split) {
      metrics.split_gateway_to_command_ms = split.gateway;
      metrics.split_command_to_prompt_event_ms = split.command;
      metrics.split_prompt_event_to_reply_event_ms = split.prompt;
      metrics.split_reply_event_to_client_ms = split.reply;
      metrics.split_model_call_ms = split.model;
    }
    const table: Array<[string, string, string]> = levels.map((l) => [
      `prompt → reply, ${l.concurrency} concurrent p50 / p95 / p99`,
      `${metrics[`e2e_p50_ms_${l.concurrency}`]} / ${metrics[`e2e_p95_ms_${l.concurrency}`]} / ${metrics[`e2e_p99_ms_${l.concurrency}`]} ms`,
      l.concurrency === 1 ? 'p50 < 5 ms' : l.concurrency === 500 ? 'p95 < 20 ms' : '',
    ]);
    for (const l of levels) table.push([`prompts/s at ${l.concurrency} concurrent (${l.completed} replies, ${l.errors} errors)`, `${metrics[`prompts_per_s_${l.concurrency}`]}`, '']);
    if (split) {
      table.push(['  at 1: client → command produced (gateway), median', `${split.gateway} ms`, '']);
      table.push(['  at 1: → PromptReceived produced (command ack + consumer hop + actor)', `${split.command} ms`, '']);
      table.push(['  at 1: → ReplyGenerated produced (event ack + model + actor)', `${split.prompt} ms`, '']);
      table.push(['    of which the model call (HTTP to the fake, OpenAI SDK)', `${split.model} ms`, '']);
      table.push(['  at 1: → reply at the client (event ack + consumer hop + socket)', `${split.reply} ms`, '']);
    }
    table.push(['sustained prompts/s (best level)', `${metrics.sustained_prompts_per_s}`, '≥ 5,000']);
    table.push(['idle sockets held by one gateway process', `${cap.held.toLocaleString()}`, '10,000']);
    table.push(['memory per socket (RSS growth / sockets)', `${(perSocket / 1024).toFixed(1)} KB`, '< 10 KB']);
    table.push(['machine load (1-min average) at start / end', `${run.loadStart} / ${loadNow()}`, '(2 cores, shared)']);
    report({
      name: 'gateway',
      params: {
        levels: LEVELS,
        prompts_at_1: PROMPTS_1,
        warmup_at_1: WARMUP_1,
        seconds_per_level: SECONDS,
        warmup_prompts_per_socket: WARMUP_PER_SOCKET,
        sockets_target: SOCKETS,
        ...(SOCKETS_FRAME ? { sockets_frame: SOCKETS_FRAME } : {}),
        partitions: PARTITIONS,
        processes: 'gateway, actors, projections: one Node process each (the real CLI); the fake model and the clients in others',
        model: 'fake OpenAI-compatible server, zero latency',
        speech: 'off',
        ...run.params(),
      },
      metrics,
      table,
    });
  } finally {
    await Promise.all(procs.map((p) => p.kill()));
    await stop(fake.child);
    const problems = await cleanUp(leftovers);
    disarm();
    log(problems.length ? `clean-up problems: ${problems.join('; ')}` : `cleaned up (topics and groups ${namespace}*, Redis keys ${namespace}*, schema ${schema})`);
  }
}

// ---- helper modes (this file forked as a child) ----------------------------------------

/** Opens `count` sockets (200 handshakes at a time), reports, and holds them until told to stop. */
async function socketClients(url: string, count: number, seconds: number, frame: string): Promise<void> {
  const sockets: WebSocket[] = [];
  let opened = 0;
  let failed = 0;
  let firstError: string | null = null;
  const deadline = now() + seconds * 1000;
  const report = setInterval(() => process.send?.({ opened, failed }), 1_000);
  let next = 0;
  await Promise.all(Array.from({ length: 200 }, async () => {
    while (next < count && now() < deadline) {
      next++;
      try {
        const ws = new WebSocket(url, { perMessageDeflate: false });
        await new Promise<void>((resolve, reject) => {
          ws.once('open', () => resolve());
          ws.once('error', reject);
        });
        ws.on('error', () => {});
        sockets.push(ws);
        if (frame) ws.send(frame);
        opened++;
      } catch (err) {
        failed++;
        firstError ??= (err as Error).message;
        if (failed > 100) return;
      }
    }
  }));
  clearInterval(report);
  process.send?.({ done: true, opened, failed, firstError });
  const close = () => {
    for (const ws of sockets) ws.terminate();
    process.exit(0);
  };
  process.on('SIGTERM', close);
  process.on('disconnect', close);
}

if (process.argv[2] === '--socket-clients') {
  await socketClients(process.argv[3]!, Number(process.argv[4]), Number(process.argv[5]), process.argv[6] ?? '');
} else if (process.argv[2] === '--fake-openai') {
  const fake = await startFakeOpenAI();
  process.send?.({ url: fake.url });
  const close = () => void fake.close().finally(() => process.exit(0));
  process.on('SIGTERM', close);
  process.on('disconnect', close);
}
