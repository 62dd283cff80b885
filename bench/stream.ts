// Streaming: the time gemello adds between a piece of text leaving the model and the same
// text reaching the client as a reply.delta, at 1 and at 100 concurrent streams, and how
// many deltas one node delivers per second. `gemello serve` (gateway, actor host and
// projections in one process) on real Kafka, PostgreSQL and Redis; the model is a fake
// OpenAI-compatible server streaming server-sent events over HTTP with a pause per token,
// in this process, so the model's write and the client's read are timed on one clock.
// What is measured per token: client receive − fake write, which includes the SDK's SSE
// parsing, the host's coalescing window, Redis pub/sub and the gateway's WebSocket send.
import OpenAI from 'openai';
import WebSocket from 'ws';
import { replySoFar } from '../models/reply-stream.ts';
import { startBenchServe } from './serve.ts';
import { percentile, report, round, startRun } from './report.ts';

const TOKENS = Number(process.env.BENCH_STREAM_TOKENS ?? 40);
const TOKEN_MS = Number(process.env.BENCH_STREAM_TOKEN_MS ?? 10);
const SOLO_STREAMS = Number(process.env.BENCH_STREAM_SOLO ?? 20);
const CONCURRENT = Number(process.env.BENCH_STREAM_CONCURRENT ?? 100);

/** Waits for every stream's reply, at most `ms`: a stalled stream fails the run with how many finished, instead of hanging it. */
async function allDone(list: Stream[], what: string, ms = 120_000): Promise<void> {
  let finished = 0;
  for (const st of list) void st.done.then(() => finished++);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const limit = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: only ${finished} of ${list.length} replies within ${ms / 1000} s`)), ms)));
  try {
    await Promise.race([Promise.all(list.map((st) => st.done)), limit]);
  } finally {
    clearTimeout(timer);
  }
}

type Stream = { written: number[]; ends: number[]; received: number; latencies: number[]; done: Promise<void>; deltas: number };

export async function run(): Promise<void> {
  const started = startRun();
  const s = await startBenchServe('bst', { GEMELLO_RATE_PER_SEC: '100000', GEMELLO_RATE_BURST: '100000', GEMELLO_LOG_QUIET: '1', GEMELLO_MODEL_RETRIES: '0' });
  const { fake, port } = s;
  const streams = new Map<string, Stream>();
  // The fake tells when it writes each piece: "echo:" then " w1", " w2"… of the stream named in the prompt.
  // The seed twin collects fields, so the model answers in JSON: a piece ends where the
  // reply text read out of the JSON so far ends (what a client can be shown by then).
  const json = new Map<Stream, string>();
  fake.onChunk((body, _i, piece, at) => {
    const said = String(body.messages.at(-1)?.content ?? '');
    const st = streams.get(said.split(' ')[0]!);
    if (!st) return;
    const content = (json.get(st) ?? '') + piece;
    json.set(st, content);
    st.written.push(at);
    st.ends.push(body.response_format ? (replySoFar(content) ?? '').trimStart().trimEnd().length : content.trimEnd().length);
  });
  const words = (tag: string) => [tag, ...Array.from({ length: TOKENS - 2 }, (_, i) => `w${i}`)].join(' ');

  async function open(): Promise<WebSocket> {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return ws;
  }

  /** One prompt streamed to `ws`; resolves with its stream once the reply frame came. */
  function streamOn(ws: WebSocket, tag: string): Stream {
    let finish!: () => void;
    const st: Stream = { written: [], ends: [], received: 0, latencies: [], deltas: 0, done: new Promise<void>((r) => (finish = r)) };
    streams.set(tag, st);
    const onMessage = (data: WebSocket.RawData) => {
      const at = performance.now();
      const f = JSON.parse(data.toString()) as { type: string; offset?: number; text?: string };
      if (f.type === 'reply.delta') {
        st.deltas++;
        const upTo = f.offset! + f.text!.length;
        // Every token this delta completes: its latency from the model's write to here.
        for (let i = 0; i < st.ends.length; i++) if (st.ends[i]! > st.received && st.ends[i]! <= upTo) st.latencies.push(at - st.written[i]!);
        st.received = upTo;
      } else if (f.type === 'reply' || f.type === 'error') {
        ws.off('message', onMessage);
        finish();
      }
    };
    ws.on('message', onMessage);
    ws.send(JSON.stringify({ type: 'prompt', digitalTwinId: 'warren-buffett-001', prompt: words(tag), stream: true }));
    return st;
  }

  try {
    fake.setTokenDelay(TOKEN_MS);
    // The floor on this machine now: the same SSE stream read by the openai SDK in this
    // process, straight from the fake (no gemello): fake write → SDK chunk.
    const floor: number[] = [];
    const sdk = new OpenAI({ apiKey: 'k', baseURL: fake.url, maxRetries: 0 });
    for (let i = 0; i < SOLO_STREAMS; i++) {
      const tag = `floor${i}`;
      const st: Stream = { written: [], ends: [], received: 0, latencies: [], deltas: 0, done: Promise.resolve() };
      streams.set(tag, st);
      const stream = await sdk.chat.completions.create({ model: 'm', stream: true, messages: [{ role: 'user', content: words(tag) }] });
      let n = 0;
      for await (const chunk of stream) if (chunk.choices[0]?.delta?.content) floor.push(performance.now() - st.written[n++]!);
    }
    // Warm-up, then one stream at a time.
    const solo = await open();
    for (let i = 0; i < 5; i++) await streamOn(solo, `warm${i}`).done;
    const one: number[] = [];
    for (let i = 0; i < SOLO_STREAMS; i++) {
      const st = streamOn(solo, `solo${i}`);
      await st.done;
      one.push(...st.latencies);
    }
    solo.close();
    console.error(`stream bench: ${SOLO_STREAMS} solo streams done`);

    // Many at once, each on its own socket and conversation.
    const sockets = await Promise.all(Array.from({ length: CONCURRENT }, () => open()));
    fake.setTokenDelay(0);
    await allDone(sockets.map((ws, i) => streamOn(ws, `cw${i}`)), 'warm-up'); // each conversation started and warm
    fake.setTokenDelay(TOKEN_MS);
    console.error(`stream bench: ${CONCURRENT} conversations warm; streaming all at once`);
    const t0 = performance.now();
    const many = sockets.map((ws, i) => streamOn(ws, `c${i}`));
    await allDone(many, `${CONCURRENT} streams`);
    const seconds = (performance.now() - t0) / 1000;
    const manyLatencies = many.flatMap((st) => st.latencies);
    const deltas = many.reduce((n, st) => n + st.deltas, 0);
    const tokens = many.reduce((n, st) => n + st.written.length, 0);

    // A fast model (no pause per token): what coalescing saves, and the node's delivery rate.
    fake.setTokenDelay(0);
    const t1 = performance.now();
    const fast = sockets.map((ws, i) => streamOn(ws, `f${i}`));
    await allDone(fast, 'fast model');
    const fastSeconds = (performance.now() - t1) / 1000;
    const fastDeltas = fast.reduce((n, st) => n + st.deltas, 0);
    const fastTokens = fast.reduce((n, st) => n + st.written.length, 0);
    for (const ws of sockets) ws.close();

    const metrics = {
      floor_sse_p50_ms: round(percentile(floor, 50)),
      floor_sse_p99_ms: round(percentile(floor, 99)),
      delta_added_p50_ms_1_stream: round(percentile(one, 50)),
      delta_added_p99_ms_1_stream: round(percentile(one, 99)),
      delta_added_p50_ms_100_streams: round(percentile(manyLatencies, 50)),
      delta_added_p99_ms_100_streams: round(percentile(manyLatencies, 99)),
      deltas_per_s_100_streams: Math.round(deltas / seconds),
      tokens_per_s_100_streams: Math.round(tokens / seconds),
      fast_model_tokens_per_delta: round(fastTokens / Math.max(1, fastDeltas), 2),
      fast_model_deltas_per_s: Math.round(fastDeltas / fastSeconds),
      fast_model_tokens_per_s: Math.round(fastTokens / fastSeconds),
    };
    report({
      name: 'stream',
      params: { ...started.params(), tokens_per_reply: TOKENS, token_pause_ms: TOKEN_MS, solo_streams: SOLO_STREAMS, concurrent_streams: CONCURRENT, coalescing_ms: 4, path: 'model SSE → actor host → Redis pub/sub → gateway → WebSocket', process: 'gemello serve (one node)' },
      metrics,
      table: [
        ['floor: fake → openai SDK in this process (no gemello) p50 / p99', `${metrics.floor_sse_p50_ms} / ${metrics.floor_sse_p99_ms} ms`, ''],
        ['model delta → client delta p50, 1 stream', `${metrics.delta_added_p50_ms_1_stream} ms`, '< 2 ms'],
        ['model delta → client delta p99, 1 stream', `${metrics.delta_added_p99_ms_1_stream} ms`, '< 10 ms'],
        [`model delta → client delta p50, ${CONCURRENT} streams`, `${metrics.delta_added_p50_ms_100_streams} ms`, '< 2 ms'],
        [`model delta → client delta p99, ${CONCURRENT} streams`, `${metrics.delta_added_p99_ms_100_streams} ms`, '< 10 ms'],
        [`deltas/s through one node (${CONCURRENT} streams, ${TOKEN_MS} ms/token)`, String(metrics.deltas_per_s_100_streams), ''],
        [`fast model: tokens per delta (coalescing), deltas/s, tokens/s`, `${metrics.fast_model_tokens_per_delta}, ${metrics.fast_model_deltas_per_s}, ${metrics.fast_model_tokens_per_s}`, ''],
      ],
    });
  } finally {
    await s.close();
  }
}
