// One model call's CPU: `chat.completions.create` through the `openai` SDK to the zero-latency
// fake OpenAI-compatible server in a process of its own, on each transport the SDK can be
// given: Node's own fetch, and gemello's (models/http-fetch.ts, which createOpenAIClient uses
// on Node). Non-streamed (a seed client's reply) and streamed (SSE, a followed reply); CPU is
// this process's user + system time over BENCH_CALLS (3000) calls, BENCH_AT_ONCE (20) at a time,
// after 300 warm-up ones, in ROUNDS alternating rounds (the lowest round is reported).
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { createHttpFetch } from '../models/http-fetch.ts';
import { loadNow, report, round, startRun } from './report.ts';

const CALLS = Number(process.env.BENCH_CALLS ?? 3000);
const AT_ONCE = Number(process.env.BENCH_AT_ONCE ?? 20);
const ROUNDS = 3;
const FAKE = fileURLToPath(new URL('./prompt-path.ts', import.meta.url));

const transports = { 'node-fetch': undefined, 'gemello-http': createHttpFetch() } as const;
type Transport = keyof typeof transports;

const body = {
  model: 'gpt-4.1-nano',
  messages: [
    { role: 'system' as const, content: 'You are Warren Buffett, an investor. Answer briefly and plainly.' },
    { role: 'user' as const, content: 'What do you think of index funds for a young saver?' },
  ],
};

function startFake(): Promise<{ child: ChildProcess; url: string }> {
  const child = fork(FAKE, ['--fake-openai'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    child.once('message', (m: { url: string }) => resolve({ child, url: m.url }));
    child.once('exit', (code) => reject(new Error(`fake model exited (${code})`)));
  });
}

/** µs of CPU per call over `n` calls, AT_ONCE at a time. */
async function cpuPerCall(client: OpenAI, streamed: boolean, n: number): Promise<number> {
  const one = async () => {
    const signal = new AbortController().signal; // as the actor host passes one (stop)
    let text = '';
    if (streamed) {
      const stream = await client.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } }, { signal });
      for await (const chunk of stream) text += chunk.choices?.[0]?.delta?.content ?? '';
    } else {
      text = (await client.chat.completions.create(body, { signal })).choices[0]?.message.content ?? '';
    }
    if (!text) throw new Error('the fake answered no text');
  };
  let started = 0;
  const t0 = process.cpuUsage();
  await Promise.all(Array.from({ length: AT_ONCE }, async () => {
    while (started++ < n) await one();
  }));
  const t = process.cpuUsage(t0);
  return (t.user + t.system) / n;
}

export async function run(): Promise<void> {
  const runInfo = startRun();
  const fake = await startFake();
  const best: Record<string, number> = {};
  try {
    const clients = Object.fromEntries(Object.entries(transports).map(([name, f]) => [name, new OpenAI({
      apiKey: 'bench', baseURL: fake.url, organization: null, project: null, webhookSecret: null, logLevel: 'warn', timeout: 30_000, maxRetries: 2, ...(f ? { fetch: f } : {}),
    })])) as Record<Transport, OpenAI>;
    for (const streamed of [false, true]) {
      for (const name of Object.keys(transports) as Transport[]) await cpuPerCall(clients[name], streamed, 300);
      for (let r = 0; r < ROUNDS; r++) {
        for (const name of Object.keys(transports) as Transport[]) {
          const us = await cpuPerCall(clients[name], streamed, CALLS);
          const key = `${name.replace(/-/g, '_')}_${streamed ? 'streamed' : 'whole'}_cpu_us`;
          best[key] = Math.min(best[key] ?? Infinity, round(us, 1));
          console.log(`[model-call] ${name}, ${streamed ? 'streamed' : 'whole'}: ${round(us, 1)} µs of CPU per call (round ${r + 1}, load ${loadNow()})`);
        }
      }
    }
  } finally {
    fake.child.kill('SIGTERM');
  }
  const table: Array<[string, string, string]> = [];
  for (const streamed of ['whole', 'streamed']) {
    for (const name of Object.keys(transports)) {
      table.push([`${name}: one ${streamed === 'whole' ? 'non-streamed' : 'streamed (SSE)'} chat.completions.create, CPU (lowest of ${ROUNDS} rounds)`, `${best[`${name.replace(/-/g, '_')}_${streamed}_cpu_us`]} µs`, '']);
    }
  }
  table.push(['machine load (1-min average) at start / end', `${runInfo.loadStart} / ${loadNow()}`, '(2 cores, shared)']);
  report({
    name: 'model-call',
    params: { calls: CALLS, at_once: AT_ONCE, rounds: ROUNDS, model: 'fake OpenAI-compatible server, zero latency, own process', ...runInfo.params(), backends: 'none (the fake model only)' },
    metrics: best,
    table,
  });
}
