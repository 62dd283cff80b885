/**
 * A fake OpenAI-compatible server for tests: real HTTP on 127.0.0.1, a free port.
 *
 *   const fake = await startFakeOpenAI();          // opts: { mode?, latencyMs? }
 *   createOpenAIReplyModel({ apiKey: 'test', baseURL: fake.url });
 *   fake.url             // base URL including /v1, e.g. http://127.0.0.1:40123/v1
 *   fake.requests        // JSON bodies received on POST /v1/chat/completions, in arrival order (opts.keep: only the last so many)
 *                        // (recorded on arrival, so failed and retried attempts count too)
 *   fake.speechRequests  // JSON bodies received on POST /v1/audio/speech
 *   fake.transcriptions  // multipart uploads received on POST /v1/audio/transcriptions: model,
 *                        // language, response_format, the file's name and type, and its bytes
 *   fake.setTranscript(t) // what the transcription route answers (default "ciao")
 *   fake.setTranscriptMode(m) // the transcription route's own mode (default 'ok'; 'error500',
 *                        // 'hang', 'slow' after the latency, 'empty' answers an empty text), so a
 *                        // test can hang the model while speech to text answers
 *   fake.setMode(m)      // 'ok'     chat: `echo: <last user message>` with usage; speech: audio
 *                        // 'error500' both endpoints answer HTTP 500 with an OpenAI-style error body
 *                        // 'hang'   accept the request and never answer (until close())
 *                        // 'slow'   like 'ok' after the latency (1000 ms if none was set)
 *                        // 'empty'  chat answers 200 with an empty message; speech with no bytes
 *   fake.setLatency(ms)  // delay before every answer, in any mode (default 0)
 *   fake.setSpeechLatency(ms) // a further delay before each speech answer only (default 0)
 *   fake.setStructuredOutput(false) // chat requests with a response_format get HTTP 400, as a
 *                        // model without structured output answers (default true);
 *                        // 'bad-schema': HTTP 400 refusing the schema itself
 *   fake.setTokenDelay(ms) // a request with `stream: true` is answered with server-sent events,
 *                        // one chunk per word (a few characters of JSON with structured output),
 *                        // this long apart (default 0), then a usage chunk and [DONE]
 *   fake.setReplyText(t) // answer `t` instead of the echo (null: the echo again)
 *   fake.aborted         // how many streamed answers the client hung up on before their end
 *   fake.streaming       // how many streamed answers are being written right now
 *   fake.onChunk(f)      // f(request body, piece index, piece, performance.now()) as each streamed piece is written (benchmarks)
 *   await fake.close()   // drops hanging requests and stops the server
 *
 * Structured output: when a chat request asks for `response_format: {type: "json_schema"}`
 * with the `{reply, proposed}` schema, the content is that JSON: `reply` is the echo, and
 * each property of `proposed` takes the value the last user message states as
 * `<name>=<value>` (a number or boolean when the schema's type says so; a quoted value may
 * hold spaces), else null.
 *
 * POST /v1/audio/speech returns a tiny WAV (0.25 s, 24 kHz mono 16-bit) when
 * response_format is "wav", else 12 frames of constant-bitrate MP3 at 128 kb/s
 * (5004 bytes, ≈0.313 s; the frames hold silence-ish zeros, only the headers are real).
 * POST /v1/audio/transcriptions (multipart, as the SDK sends it) answers `{"text": <transcript>}`.
 * Other paths answer 404.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** How the fake answers; see the comment at the top of this file. */
export type FakeOpenAIMode = 'ok' | 'error500' | 'hang' | 'slow' | 'empty';

/** A chat completions request body as the fake received it. */
export type FakeChatRequest = {
  model: string;
  messages: { role: string; content: string }[];
  [key: string]: unknown;
};

/** An audio speech request body as the fake received it. */
export type FakeSpeechRequest = { model: string; voice: string; input: string; response_format?: string; [key: string]: unknown };

/** An upload to POST /v1/audio/transcriptions as the fake received it. */
export type FakeTranscription = { model: string; language: string | null; responseFormat: string | null; filename: string; contentType: string; bytes: Uint8Array };

/** Told as each piece of a streamed answer is written. */
export type ChunkListener = (body: FakeChatRequest, index: number, piece: string, at: number) => void;

/** A running fake server; see the comment at the top of this file. */
export type FakeOpenAI = {
  url: string;
  requests: FakeChatRequest[];
  speechRequests: FakeSpeechRequest[];
  transcriptions: FakeTranscription[];
  setTranscript(text: string): void;
  setTranscriptMode(mode: FakeOpenAIMode): void;
  setMode(mode: FakeOpenAIMode): void;
  setLatency(ms: number): void;
  setSpeechLatency(ms: number): void;
  setStructuredOutput(supported: boolean | 'bad-schema'): void;
  setTokenDelay(ms: number): void;
  setReplyText(text: string | null): void;
  readonly aborted: number;
  readonly streaming: number;
  onChunk(listener: ChunkListener | null): void;
  close(): Promise<void>;
};

const DEFAULT_SLOW_MS = 1000;

/** Starts the fake server; see the comment at the top of this file. */
export async function startFakeOpenAI(opts: { mode?: FakeOpenAIMode; latencyMs?: number; /** Keep only the last this many request bodies (a long benchmark's memory); default all. */ keep?: number } = {}): Promise<FakeOpenAI> {
  let mode: FakeOpenAIMode = opts.mode ?? 'ok';
  let latencyMs = opts.latencyMs ?? 0;
  let speechLatencyMs = 0;
  let structuredOutput: boolean | 'bad-schema' = true;
  let tokenDelayMs = 0;
  let replyText: string | null = null;
  let aborted = 0;
  let streaming = 0;
  let chunkListener: ChunkListener | null = null;
  const requests: FakeChatRequest[] = [];
  const speechRequests: FakeSpeechRequest[] = [];
  const transcriptions: FakeTranscription[] = [];
  let transcript = 'ciao';
  let transcriptMode: FakeOpenAIMode = 'ok';
  const sockets = new Set<Socket>();
  const timers = new Set<ReturnType<typeof setTimeout>>();

  const server = createServer(async (req, res) => {
    const raw = await readBody(req);
    const path = (req.url ?? '').split('?')[0];
    if (req.method === 'POST' && path === '/v1/audio/transcriptions') return transcribe(req, raw, res);
    const body = parseJson(raw);
    const chat = req.method === 'POST' && path === '/v1/chat/completions';
    const speech = req.method === 'POST' && path === '/v1/audio/speech';
    if (!chat && !speech) return sendJson(res, 404, { error: { message: `no route ${req.method} ${path}`, type: 'invalid_request_error' } });
    if (chat) requests.push(body as FakeChatRequest);
    else speechRequests.push(body as FakeSpeechRequest);
    if (opts.keep !== undefined) for (const list of [requests, speechRequests]) if (list.length > opts.keep) list.splice(0, list.length - opts.keep);

    const current = mode;
    answerAs(current, res, speech ? speechLatencyMs : 0, () => {
      if (chat && structuredOutput !== true && (body as FakeChatRequest).response_format) {
        const message = structuredOutput === false
          ? "Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model."
          : "Invalid schema for response_format 'twin_reply': In context=(), 'required' is required to be supplied and to be an array including every key in properties.";
        return sendJson(res, 400, { error: { message, type: 'invalid_request_error', param: 'response_format', code: null } });
      }
      if (chat && (body as FakeChatRequest).stream === true) {
        streaming++;
        res.on('close', () => streaming--);
        const told = chunkListener;
        const onPiece = told ? (i: number, piece: string) => told(body as FakeChatRequest, i, piece, performance.now()) : null;
        return streamCompletion(res, completion(body as FakeChatRequest, current === 'empty', replyText), structured(body as FakeChatRequest), tokenDelayMs, timers, () => aborted++, onPiece);
      }
      if (chat) return sendJson(res, 200, completion(body as FakeChatRequest, current === 'empty', replyText));
      const format = (body as FakeSpeechRequest).response_format ?? 'mp3';
      const audio = current === 'empty' ? new Uint8Array(0) : format === 'wav' ? tinyWav() : tinyMp3();
      res.writeHead(200, { 'content-type': format === 'wav' ? 'audio/wav' : 'audio/mpeg', 'content-length': audio.byteLength });
      res.end(audio);
    });
  });
  /**
   * Answers as the mode `current` (the mode when the request came) says: never (hang), after
   * the latency (slow: the latency or a second), a 500 (error500), else `answer()` — unless
   * the client has gone by then. The timer is cleared by close().
   */
  function answerAs(current: FakeOpenAIMode, res: ServerResponse, extraMs: number, answer: () => void): void {
    if (current === 'hang') return;
    const go = () => {
      if (res.destroyed) return;
      if (current === 'error500') return sendJson(res, 500, { error: { message: 'The fake server had an error', type: 'server_error' } });
      answer();
    };
    const delay = (current === 'slow' ? latencyMs || DEFAULT_SLOW_MS : latencyMs) + extraMs;
    if (delay <= 0) return go();
    const timer = setTimeout(() => {
      timers.delete(timer);
      go();
    }, delay);
    timers.add(timer);
  }
  /** The transcription route: records the upload (all of its bytes), then answers as the mode says. */
  async function transcribe(req: IncomingMessage, raw: Buffer, res: ServerResponse): Promise<void> {
    let form: FormData;
    try {
      form = await new Response(new Uint8Array(raw), { headers: { 'content-type': String(req.headers['content-type'] ?? '') } }).formData();
    } catch (err) {
      return sendJson(res, 400, { error: { message: `not multipart form data: ${(err as Error).message}`, type: 'invalid_request_error' } });
    }
    const file = form.get('file');
    if (!(file instanceof Blob)) return sendJson(res, 400, { error: { message: 'file is required', type: 'invalid_request_error' } });
    const field = (k: string) => (typeof form.get(k) === 'string' ? (form.get(k) as string) : null);
    transcriptions.push({ model: field('model') ?? '', language: field('language'), responseFormat: field('response_format'), filename: (file as File).name ?? '', contentType: file.type, bytes: new Uint8Array(await file.arrayBuffer()) });
    if (opts.keep !== undefined && transcriptions.length > opts.keep) transcriptions.splice(0, transcriptions.length - opts.keep);
    const current = transcriptMode;
    answerAs(current, res, 0, () => sendJson(res, 200, { text: current === 'empty' ? '' : transcript }));
  }
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}/v1`,
    requests,
    speechRequests,
    transcriptions,
    setTranscript: (text) => { transcript = text; },
    setTranscriptMode: (next) => { transcriptMode = next; },
    setMode: (next) => { mode = next; },
    setLatency: (ms) => { latencyMs = ms; },
    setSpeechLatency: (ms) => { speechLatencyMs = ms; },
    setStructuredOutput: (supported) => { structuredOutput = supported; },
    setTokenDelay: (ms) => { tokenDelayMs = ms; },
    setReplyText: (text) => { replyText = text; },
    get aborted() { return aborted; },
    get streaming() { return streaming; },
    onChunk: (listener) => { chunkListener = listener; },
    close: () => {
      for (const timer of timers) clearTimeout(timer);
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Sends a completion as server-sent events, piece by piece, `delayMs` apart; counts a client that hangs up before the end. */
function streamCompletion(res: ServerResponse, c: ReturnType<typeof completion>, json: boolean, delayMs: number, timers: Set<ReturnType<typeof setTimeout>>, onAbort: () => void, onPiece: ((i: number, piece: string) => void) | null): void {
  const content = c.choices[0]!.message.content;
  const pieces = json ? content.match(/[\s\S]{1,4}/g) ?? [] : content.match(/\s*\S+/g) ?? [];
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
  const base = { id: c.id, object: 'chat.completion.chunk', created: c.created, model: c.model };
  const event = (value: unknown) => res.write(`data: ${JSON.stringify(value)}\n\n`);
  let done = false;
  res.on('close', () => {
    if (!done) onAbort();
  });
  let i = 0;
  const next = () => {
    if (res.destroyed) return;
    if (i < pieces.length) {
      onPiece?.(i, pieces[i]!);
      event({ ...base, choices: [{ index: 0, delta: i === 0 ? { role: 'assistant', content: pieces[i] } : { content: pieces[i] }, finish_reason: null, logprobs: null }] });
      i++;
      if (delayMs <= 0) return next();
      const t = setTimeout(() => { timers.delete(t); next(); }, delayMs);
      timers.add(t);
      return;
    }
    event({ ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop', logprobs: null }] });
    event({ ...base, choices: [], usage: c.usage });
    done = true;
    res.end('data: [DONE]\n\n');
  };
  next();
}

function completion(body: FakeChatRequest, empty: boolean, replyText: string | null = null) {
  const lastUser = [...(body.messages ?? [])].reverse().find((m) => m.role === 'user');
  const echo = replyText ?? `echo: ${lastUser?.content ?? ''}`;
  const content = empty ? '' : structured(body) ? JSON.stringify({ reply: echo, proposed: proposals(body, String(lastUser?.content ?? '')) }) : echo;
  const words = (text: string) => text.split(/\s+/).filter(Boolean).length;
  const prompt = (body.messages ?? []).reduce((n, m) => n + words(String(m.content ?? '')), 0);
  const completionTokens = words(content);
  return {
    id: `chatcmpl-fake-${Date.now()}`,
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model: `${body.model}-fake`,
    choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop', logprobs: null }],
    usage: { prompt_tokens: prompt, completion_tokens: completionTokens, total_tokens: prompt + completionTokens },
  };
}

type Format = { type?: string; json_schema?: { schema?: { properties?: { proposed?: { properties?: Record<string, { type?: string | string[] }> } } } } };

function structured(body: FakeChatRequest): boolean {
  return (body.response_format as Format | undefined)?.type === 'json_schema';
}

/** Each proposed property: the `<name>=<value>` the user wrote, typed as the schema says, else null. */
function proposals(body: FakeChatRequest, said: string): Record<string, unknown> {
  const props = (body.response_format as Format).json_schema?.schema?.properties?.proposed?.properties ?? {};
  const out: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(props)) {
    const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const m = new RegExp(`(?:^|\\s)${escaped}=(?:"([^"]*)"|(\\S+))`).exec(said);
    const raw = m ? (m[1] ?? m[2]!) : null;
    const types = ([] as string[]).concat(spec.type ?? 'string');
    if (raw === null) out[name] = null;
    else if (types.includes('number') && raw.trim() !== '' && Number.isFinite(Number(raw))) out[name] = Number(raw);
    else if (types.includes('boolean') && (raw === 'true' || raw === 'false')) out[name] = raw === 'true';
    else out[name] = raw;
  }
  return out;
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function parseJson(raw: Buffer): unknown {
  const text = raw.toString('utf8');
  try {
    return text ? JSON.parse(text) : {};
  } catch {
    return { unparsed: text };
  }
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const text = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** 0.25 s of a 440 Hz tone, 24 kHz mono 16-bit PCM, in a 44-byte RIFF header. */
function tinyWav(): Uint8Array {
  const sampleRate = 24_000;
  const samples = sampleRate / 4;
  const bytes = new Uint8Array(44 + samples * 2);
  const view = new DataView(bytes.buffer);
  const ascii = (at: number, s: string) => { for (let i = 0; i < s.length; i++) bytes[at + i] = s.charCodeAt(i); };
  ascii(0, 'RIFF'); view.setUint32(4, 36 + samples * 2, true); ascii(8, 'WAVE');
  ascii(12, 'fmt '); view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, sampleRate, true); view.setUint32(28, sampleRate * 2, true); view.setUint16(32, 2, true); view.setUint16(34, 16, true);
  ascii(36, 'data'); view.setUint32(40, samples * 2, true);
  for (let i = 0; i < samples; i++) view.setInt16(44 + i * 2, Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / sampleRate)), true);
  return bytes;
}

/** 12 MPEG-1 layer III frames, 128 kb/s, 44.1 kHz: 417 bytes each. */
function tinyMp3(): Uint8Array {
  const frame = 417;
  const bytes = new Uint8Array(frame * 12);
  for (let at = 0; at < bytes.byteLength; at += frame) bytes.set([0xff, 0xfb, 0x90, 0x64], at);
  return bytes;
}
