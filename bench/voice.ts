// Voice: end of utterance → first audio of the reply. `gemello serve` on real Kafka,
// PostgreSQL and Redis; speech to text and the model are a fake OpenAI server in this process
// (zero-latency transcription; the model streams its answer piece by piece, a pause apart);
// speech is local (espeak-ng). A client sends an utterance (audio.start, binary frames of an
// espeak-ng WAV, audio.end) and times audio.end → the first audio.chunk.
// gemello's own share = that time − the model's (from the request reaching the fake to the
// piece that finishes the reply's first sentence, on this process's clock) − espeak-ng's.
// Warm: the first sentence is one the audio cache has (no synthesis: own = total − model).
// Cold: a new first sentence every time, so espeak-ng runs; its time is what the actor host
// measured around the synthesis (process start included), read from /metrics
// (gemello_speech_sentence_ms) before and after each run, and subtracted.
import { execFileSync } from 'node:child_process';
import WebSocket from 'ws';
import { replySoFar } from '../models/reply-stream.ts';
import { startBenchServe } from './serve.ts';
import { percentile, report, round, startRun } from './report.ts';

const RUNS = Number(process.env.BENCH_VOICE_RUNS ?? 30);
const PIECE_MS = Number(process.env.BENCH_VOICE_PIECE_MS ?? 20);
const FRAME_BYTES = 8 * 1024;

type Sample = { total: number; model: number; tts: number };

/** The total time the server spent synthesising sentences so far, by its /metrics. */
async function speechMsSoFar(port: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return Number(/^gemello_speech_sentence_ms_sum(?:\{\})? (\S+)$/m.exec(text)?.[1] ?? 0);
}

export async function run(): Promise<void> {
  const started = startRun();
  const s = await startBenchServe('bvo', { GEMELLO_SPEECH: 'espeak', GEMELLO_RATE_PER_SEC: '100000', GEMELLO_RATE_BURST: '100000', GEMELLO_LOG_QUIET: '1', GEMELLO_MODEL_RETRIES: '0' });
  const { fake, port } = s;
  // The utterance: about a second of Italian, as a microphone would give it.
  const utterance = new Uint8Array(execFileSync('espeak-ng', ['--stdout', '-v', 'it', 'Qual è il tuo consiglio oggi?']));

  // When the fake writes each piece, and when the reply read out of it holds its first sentence and the space after it.
  let first = '';
  let content = '';
  let written: number[] = [];
  let sentenceAt = -1;
  fake.onChunk((_body, i, piece, at) => {
    if (i === 0) {
      content = '';
      written = [];
      sentenceAt = -1;
    }
    content += piece;
    written.push(at);
    const text = (replySoFar(content) ?? content).trimStart();
    if (sentenceAt < 0 && text.length > first.length && text.startsWith(first) && /\s/.test(text[first.length]!)) sentenceAt = at;
  });

  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  let conversationId: string | undefined;

  /** One utterance and its reply; resolves once the reply's whole audio is out (so runs do not overlap). */
  async function utter(firstSentence: string): Promise<Sample> {
    first = firstSentence;
    fake.setReplyText(`${firstSentence} The second sentence follows it.`);
    let end = 0;
    let chunkAt = 0;
    const done = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no audio within 30 s')), 30_000);
      const onMessage = (data: WebSocket.RawData, binary: boolean) => {
        if (binary) return;
        const f = JSON.parse(data.toString()) as { type: string; conversationId?: string; error?: string };
        if (f.type === 'audio.chunk' && !chunkAt) chunkAt = performance.now();
        if (f.type === 'error') {
          clearTimeout(timer);
          ws.off('message', onMessage);
          reject(new Error(`error frame: ${JSON.stringify(f)}`));
        }
        if (f.type === 'audio' || f.type === 'audio.failed') {
          conversationId ??= f.conversationId;
          clearTimeout(timer);
          ws.off('message', onMessage);
          resolve();
        }
      };
      ws.on('message', onMessage);
    });
    const spokeBefore = await speechMsSoFar(port);
    ws.send(JSON.stringify({ type: 'audio.start', digitalTwinId: 'warren-buffett-001', ...(conversationId ? { conversationId } : {}), format: 'wav', stream: true }));
    for (let at = 0; at < utterance.byteLength; at += FRAME_BYTES) ws.send(utterance.subarray(at, at + FRAME_BYTES));
    end = performance.now();
    ws.send(JSON.stringify({ type: 'audio.end' }));
    await done;
    if (!chunkAt || sentenceAt < 0) throw new Error(`run without a chunk or a first sentence (${firstSentence})`);
    // The sentences synthesised during the run: the first one when it was not in the audio cache (the rest of the reply always is).
    const tts = (await speechMsSoFar(port)) - spokeBefore;
    return { total: chunkAt - end, model: sentenceAt - written[0]!, tts };
  }

  try {
    fake.setTokenDelay(PIECE_MS);
    for (let i = 0; i < 3; i++) await utter(`Warming up number ${i} now.`);
    await utter('Value is what you get.'); // in the audio cache from now on
    const warm: Sample[] = [];
    for (let i = 0; i < RUNS; i++) warm.push(await utter('Value is what you get.'));
    console.error(`voice bench: ${RUNS} warm runs done`);
    const cold: Sample[] = [];
    for (let i = 0; i < RUNS; i++) cold.push(await utter(`Price number ${i} is ${Date.now() % 100_000} dollars.`));
    ws.close();
    const tts = cold.map((x) => x.tts);
    if (tts.some((t) => t === 0)) throw new Error('a cold run without a synthesis');

    const own = (xs: Sample[]) => xs.map((x) => x.total - x.model - x.tts);
    const warmOwn = own(warm);
    const coldOwn = own(cold);
    const metrics = {
      warm_total_p50_ms: round(percentile(warm.map((x) => x.total), 50)),
      warm_model_p50_ms: round(percentile(warm.map((x) => x.model), 50)),
      own_share_p50_ms_warm: round(percentile(warmOwn, 50)),
      own_share_p99_ms_warm: round(percentile(warmOwn, 99)),
      cold_total_p50_ms: round(percentile(cold.map((x) => x.total), 50)),
      cold_total_p99_ms: round(percentile(cold.map((x) => x.total), 99)),
      espeak_p50_ms: round(percentile(tts, 50)),
      espeak_p99_ms: round(percentile(tts, 99)),
      own_share_p50_ms_cold: round(percentile(coldOwn, 50)),
      own_share_p99_ms_cold: round(percentile(coldOwn, 99)),
    };
    report({
      name: 'voice',
      params: { ...started.params(), runs: RUNS, model_piece_ms: PIECE_MS, utterance_bytes: utterance.byteLength, stt: 'fake OpenAI transcription, zero latency', tts: 'espeak-ng (local), timed by the actor host (gemello_speech_sentence_ms)', path: 'audio.end → STT → PromptReceived → model stream → first sentence → audio cache lookup → espeak-ng → Redis (clip, chunk) → audio.chunk (the cache write after)', process: 'gemello serve (one node)' },
      metrics,
      table: [
        ['warm (sentence cached): audio.end → first audio.chunk p50', `${metrics.warm_total_p50_ms} ms`, ''],
        ['  of which the model writing the first sentence p50', `${metrics.warm_model_p50_ms} ms`, ''],
        ['  gemello\'s own share p50 / p99', `${metrics.own_share_p50_ms_warm} / ${metrics.own_share_p99_ms_warm} ms`, 'p50 < 50 ms'],
        ['cold (espeak-ng runs): audio.end → first audio.chunk p50 / p99', `${metrics.cold_total_p50_ms} / ${metrics.cold_total_p99_ms} ms`, ''],
        ['  espeak-ng speaking the first sentence p50 / p99', `${metrics.espeak_p50_ms} / ${metrics.espeak_p99_ms} ms`, ''],
        ['  gemello\'s own share p50 / p99 (− model − espeak-ng)', `${metrics.own_share_p50_ms_cold} / ${metrics.own_share_p99_ms_cold} ms`, 'p50 < 50 ms'],
      ],
    });
  } finally {
    await s.close();
  }
}
