// One WebSocket session against in-memory ports: what a client sees when it resumes while
// the conversation moves on, when it names someone else's conversation, when its frames
// are garbage, and when it stops reading.
import { describe, expect, it } from 'vitest';
import { openCommand } from '../../sealing/commands.ts';
import { WireCommand } from '../../actors/commands.ts';
import { createCommandClient } from '../../actors/command-client.ts';
import { createTwinCatalog } from '../../actors/twins.ts';
import { KeyDestroyed } from '../../sealing/keys.ts';
import type { KeyStore } from '../../sealing/keys.ts';
import { newDataKey } from '../../sealing/seal.ts';
import type { Notice } from '../../events/codec.ts';
import type { EventEnvelope } from '../../events/schemas.ts';
import type { StreamSoFar, StreamUpdate } from '../../actors/ports.ts';
import type { FeedListener } from '../../gateway/feed.ts';
import type { Feed } from '../../gateway/feed.ts';
import { createSession, DEFAULT_LIMITS, sessionMetrics } from '../../gateway/session.ts';
import type { SessionDeps } from '../../gateway/session.ts';
import { partitionFor } from '../../log/partition.ts';
import type { EventLog, OutgoingRecord } from '../../log/port.ts';
import { createMetrics } from '../../telemetry/metrics.ts';

type Frame = Record<string, unknown>;
const seed = { id: 'warren-buffett-001', name: 'Warren Buffett' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function world(opts: { keys?: KeyStore; streaming?: () => StreamSoFar | null; limits?: Partial<SessionDeps['limits']>; failAppend?: boolean; events?: EventEnvelope[]; readDelayMs?: number; projected?: () => number; end?: number; owners?: Record<string, string | null> } = {}) {
  const listeners = new Map<string, Set<FeedListener>>();
  const feed = {
    start: async () => {},
    stop: async () => {},
    streamed: async () => opts.streaming?.() ?? null,
    chunks: async () => [],
    follow(id: string, l: FeedListener) {
      if (!listeners.has(id)) listeners.set(id, new Set());
      listeners.get(id)!.add(l);
      return () => listeners.get(id)!.delete(l);
    },
  } as unknown as Feed;
  const appended: OutgoingRecord[] = [];
  const log = {
    kind: 'kafka',
    partitions: 12,
    append: async (_t: string, _p: number, records: OutgoingRecord[]) => {
      if (opts.failAppend) throw new Error('broker down');
      return (appended.push(...records), appended.length - 1);
    },
    endOffsets: async () => new Array(12).fill(opts.end ?? 0),
  } as unknown as EventLog;
  const stored = opts.events ?? [];
  const reads: number[] = [];
  const deps: SessionDeps = {
    log,
    feed,
    commands: createCommandClient({ log, keys: opts.keys ?? null }),
    catalog: createTwinCatalog(),
    metrics: createMetrics(),
    logger: { info() {}, warn() {}, error() {} },
    limits: { ...DEFAULT_LIMITS, resumeWaitMs: 300, ...opts.limits },
    eventsAfter: async (id, after) => {
      reads.push(after);
      await sleep(opts.readDelayMs ?? 0);
      return stored.filter((e) => e.conversationId === id && e.seq > after).slice(0, 2); // pages of two
    },
    conversationOf: async (id) => {
      const lastSeq = Math.max(0, ...stored.filter((e) => e.conversationId === id).map((e) => e.seq));
      return opts.owners && id in opts.owners ? { owner: opts.owners[id]!, twin: seed, lastSeq } : lastSeq ? { owner: null, twin: seed, lastSeq } : null;
    },
    projectedUntil: async () => opts.projected?.() ?? opts.end ?? 0,
  };
  const m = sessionMetrics(deps.metrics);
  const client = (principal: string | null = null, buffered = () => 0) => {
    const frames: Frame[] = [];
    const closes: Array<[number, string]> = [];
    const session = createSession(deps, { send: (t) => frames.push(JSON.parse(t)), buffered, close: (c, r) => closes.push([c, r]) }, principal, m);
    return { session, frames, closes, send: (f: unknown) => session.onText(typeof f === 'string' ? f : JSON.stringify(f)) };
  };
  return {
    deps,
    appended,
    reads,
    client,
    commands: () => appended.map((r) => JSON.parse(r.value) as { commandId: string; conversationId: string; type: string; principal: string | null }),
    emit(e: EventEnvelope) {
      for (const l of listeners.get(e.conversationId) ?? []) l.event({ ...e, position: { partition: 0, offset: 0 } });
    },
    notice(n: Notice) {
      for (const l of listeners.get(n.conversationId) ?? []) l.notice(n);
    },
    live(u: StreamUpdate) {
      for (const l of listeners.get(u.conversationId) ?? []) l.stream?.(u);
    },
    followers: (id: string) => listeners.get(id)?.size ?? 0,
  };
}

let n = 0;
function ev(conversationId: string, seq: number, type: EventEnvelope['type'], data: Record<string, unknown>, causationId: string | null = null): EventEnvelope {
  return { eventId: `e${++n}`, conversationId, seq, schemaVersion: 1, occurredAt: new Date().toISOString(), causationId, correlationId: null, traceparent: null, type, data } as EventEnvelope;
}
const started = (id: string, userId: string | null = null, cause: string | null = null) => ev(id, 1, 'ConversationStarted', { twinId: seed.id, twinName: seed.name, userId, metadata: {} }, cause);
const prompt = (id: string, seq: number, cause: string | null = null, requestId: string | null = null) => ev(id, seq, 'PromptReceived', { text: `q${seq}`, requestId }, cause);
const reply = (id: string, seq: number, promptSeq = seq - 1) => ev(id, seq, 'ReplyGenerated', { promptSeq, text: `a${seq}`, model: 'm', tokens: { prompt: 1, completion: 1, total: 2 }, latencyMs: 1, audio: false });
const history = (id: string, upTo: number, userId: string | null = null) => [started(id, userId), ...Array.from({ length: upTo - 1 }, (_, i) => (i % 2 === 0 ? prompt(id, i + 2) : reply(id, i + 2)))];

describe('resume', () => {
  it('sends every event after afterSeq once and in order, holding back live events that race the read', async () => {
    const w = world({ events: history('c1', 7), readDelayMs: 30 });
    const c = w.client();
    const done = c.send({ type: 'resume', conversationId: 'c1', afterSeq: 3, requestId: 'r' });
    await sleep(5);
    // While the read model is being read, the conversation moves on: 7 is in both, 8 and 9 only live.
    w.emit(reply('c1', 7));
    w.emit(prompt('c1', 8));
    w.emit(reply('c1', 9));
    await done;
    expect(c.frames.map((f) => `${f.type}:${f.seq ?? f.lastSeq}`)).toEqual(['event:4', 'event:5', 'event:6', 'event:7', 'resumed:7', 'reply:9']);
    expect(c.frames[4]).toMatchObject({ conversationId: 'c1', requestId: 'r', digitalTwinId: seed.id });
    // Paged reads: it asks until the read model has nothing more.
    expect(w.reads).toEqual([3, 5, 7]);
  });

  it('a prompt sent right after a resume gets its reply with its requestId, and no `unavailable`, however the read model and the feed race', async () => {
    for (const end of [3, 4, 5]) {
      // The log's end when the resume began: 3, the prompt lands after it (it comes live); 4, it
      // lands before (the resume reads it back), and only its reply comes after.
      const at = (e: EventEnvelope, offset: number) => ({ ...e, position: { partition: 0, offset } });
      const stored: EventEnvelope[] = history('c1', 3).map((e, i) => at(e, i));
      const w = world({ events: stored, end, readDelayMs: 20, limits: { acceptWithinMs: 150 } });
      // The log away later: a prompt still owed its reply would be told `unavailable`.
      (w.deps.log as { ping?: () => Promise<void> }).ping = async () => { throw new Error('broker away'); };
      const c = w.client();
      const resumed = c.send({ type: 'resume', conversationId: 'c1', afterSeq: 3 });
      const prompted = c.send({ type: 'prompt', digitalTwinId: seed.id, conversationId: 'c1', prompt: 'next', requestId: 'rb' });
      await prompted;
      const { commandId } = w.commands().at(-1)!;
      // The actor host answers while the resume reads: the read model has both events before the feed brings them.
      const asked = at(prompt('c1', 4, commandId, 'rb'), 3);
      const answer = at(reply('c1', 5, 4), 4);
      stored.push(asked, answer);
      w.emit(asked);
      w.emit(answer);
      await resumed;
      await sleep(200);
      const seen = c.frames.map((f) => `${f.type}:${f.seq ?? f.lastSeq}`);
      // 5: both landed before the resume began: read back, and the prompt is owed nothing more.
      expect(seen, `end ${end}`).toEqual(end === 3 ? ['resumed:3', 'reply:5'] : end === 4 ? ['event:4', 'resumed:4', 'reply:5'] : ['event:4', 'event:5', 'resumed:5']);
      if (end < 5) expect(c.frames.at(-1), `end ${end}`).toMatchObject({ type: 'reply', seq: 5, requestId: 'rb' });
    }
  });

  it('a resume after a seq the conversation has not reached still lets the events that come through', async () => {
    const w = world({ events: history('c1', 3) });
    const c = w.client();
    await c.send({ type: 'resume', conversationId: 'c1', afterSeq: 50 });
    expect(c.frames).toMatchObject([{ type: 'resumed', conversationId: 'c1', lastSeq: 3 }]);
    w.emit(prompt('c1', 4));
    w.emit(reply('c1', 5));
    expect(c.frames.map((f) => `${f.type}:${f.seq ?? f.lastSeq}`)).toEqual(['resumed:3', 'reply:5']);
  });

  it('waits for the read model to reach the log before reading it', async () => {
    let covered = 10;
    setTimeout(() => (covered = 20), 60);
    const w = world({ events: history('c1', 3), end: 20, projected: () => covered });
    const c = w.client();
    const t0 = Date.now();
    await c.send({ type: 'resume', conversationId: 'c1', afterSeq: 0 });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(50);
    expect(c.frames.map((f) => f.type)).toEqual(['event', 'event', 'event', 'resumed']);
  });

  it('says `unavailable` rather than leave a gap when the read model stays behind', async () => {
    const w = world({ events: history('c1', 3), end: 20, projected: () => 10 });
    const c = w.client();
    await c.send({ type: 'resume', conversationId: 'c1', afterSeq: 0, requestId: 'r' });
    expect(c.frames).toEqual([expect.objectContaining({ type: 'error', code: 'unavailable', conversationId: 'c1', requestId: 'r' })]);
  });
});

describe('with auth, a conversation belongs to its principal', () => {
  it('refuses to resume another principal\'s conversation, and an unknown one', async () => {
    const w = world({ events: history('alice-1', 5, 'alice'), owners: { 'alice-1': 'alice' } });
    const bob = w.client('bob');
    await bob.send({ type: 'resume', conversationId: 'alice-1', afterSeq: 0 });
    await bob.send({ type: 'resume', conversationId: 'nobody', afterSeq: 0 });
    expect(bob.frames.map((f) => f.code)).toEqual(['forbidden', 'conversation_not_found']);
    expect(w.followers('alice-1')).toBe(0);
    w.emit(reply('alice-1', 7, 6));
    expect(bob.frames).toHaveLength(2);

    const alice = w.client('alice');
    await alice.send({ type: 'resume', conversationId: 'alice-1', afterSeq: 0 });
    expect(alice.frames.map((f) => f.type)).toEqual(['event', 'event', 'event', 'event', 'event', 'resumed']);
  });

  it('shows nothing of a named conversation until the actor accepts the socket\'s own command', async () => {
    const w = world();
    const alice = w.client('alice');
    await alice.send({ digitalTwinId: seed.id, prompt: 'hi', requestId: 'a1' });
    const aliceCmd = w.commands()[0]!;
    const id = aliceCmd.conversationId;
    const bob = w.client('bob');
    await bob.send({ digitalTwinId: seed.id, prompt: 'let me in', conversationId: id, requestId: 'b1' });
    const bobCmd = w.commands()[1]!;
    expect(bobCmd).toMatchObject({ conversationId: id, principal: 'bob', type: 'SubmitPrompt' });

    // Alice's conversation goes on; bob follows it but is not shown any of it.
    w.emit(started(id, 'alice', aliceCmd.commandId));
    w.emit(prompt(id, 2, aliceCmd.commandId, 'a1'));
    w.emit(reply(id, 3));
    // The actor refuses bob's prompt: only bob hears it, and he stops following.
    w.notice({ type: 'rejected', commandId: bobCmd.commandId, conversationId: id, correlationId: 'b1', code: 'forbidden', message: 'no' });
    w.emit(prompt(id, 4, aliceCmd.commandId));
    w.emit(reply(id, 5));
    await sleep(5);
    expect(bob.frames).toEqual([{ type: 'error', conversationId: id, requestId: 'b1', error: 'no', code: 'forbidden' }]);
    expect(alice.frames.map((f) => [f.type, f.seq, f.requestId])).toEqual([['reply', 3, 'a1'], ['reply', 5, undefined]]);

    // A prompt without a conversationId starts bob's own conversation, not alice's.
    await bob.send({ digitalTwinId: seed.id, prompt: 'mine' });
    expect(w.commands()[2]!.conversationId).not.toBe(id);
  });

  it('keeps following a conversation whose prompt its actor has not taken up yet, however many others the socket follows', async () => {
    const w = world({ limits: { ratePerSec: 10_000, burst: 10_000 } });
    const c = w.client();
    await c.send({ digitalTwinId: seed.id, prompt: 'first' });
    const first = w.commands()[0]!;
    // The socket's conversation with the twin moves elsewhere, and it follows many more.
    await c.send({ digitalTwinId: seed.id, prompt: 'elsewhere', conversationId: 'other' });
    for (let i = 0; i < 150; i++) await c.send({ type: 'confirm', conversationId: `conf-${i}`, data: { k: i } });
    expect(w.commands()).toHaveLength(152);
    expect(w.followers(first.conversationId)).toBe(1);
    w.emit(started(first.conversationId, null, first.commandId));
    w.emit(prompt(first.conversationId, 2, first.commandId));
    w.emit(reply(first.conversationId, 3));
    expect(c.frames.filter((f) => f.type === 'reply')).toMatchObject([{ conversationId: first.conversationId, seq: 3 }]);
    // Once answered, it may be let go like any other.
    for (let i = 150; i < 300; i++) await c.send({ type: 'confirm', conversationId: `conf-${i}`, data: { k: i } });
    expect(w.followers(first.conversationId)).toBe(0);
  });

  it('echoes a requestId only to the socket that sent it', async () => {
    const w = world();
    const a = w.client();
    const b = w.client();
    await a.send({ digitalTwinId: seed.id, prompt: 'hi', conversationId: 'shared', requestId: 'from-a' });
    await b.send({ type: 'resume', conversationId: 'shared', afterSeq: 0 });
    const cmd = w.commands()[0]!;
    w.emit(started('shared', null, cmd.commandId));
    w.emit(prompt('shared', 2, cmd.commandId, 'from-a'));
    w.emit(reply('shared', 3));
    await sleep(5);
    expect(a.frames.at(-1)).toMatchObject({ type: 'reply', seq: 3, requestId: 'from-a' });
    expect(b.frames.at(-1)).toMatchObject({ type: 'reply', seq: 3 });
    expect(b.frames.at(-1)).not.toHaveProperty('requestId');
  });
});

describe("a flow's answers", () => {
  it("echo the prompt's requestId on what the flow says after its backend call, and only once", async () => {
    const w = world();
    const a = w.client();
    await a.send({ digitalTwinId: seed.id, prompt: 'sì', conversationId: 'flowing', requestId: 'r10' });
    const cmd = w.commands()[0]!;
    w.emit(started('flowing', null, cmd.commandId));
    w.emit(prompt('flowing', 2, cmd.commandId, 'r10'));
    // The flow calls its backend (TaskStarted), then says the result: caused by the call's outcome, not the prompt.
    w.emit(ev('flowing', 3, 'TaskStarted', { task: 'register', taskType: 'backendCall', key: 'k1' }));
    w.emit(ev('flowing', 4, 'MessageSaid', { task: 'bye', text: 'Grazie, sei registrato con il codice C-0042' }));
    // A later noInput prompt answers nobody's prompt.
    w.emit(ev('flowing', 5, 'MessageSaid', { task: 'bye', text: 'Sei ancora lì?' }));
    await sleep(5);
    const replies = a.frames.filter((f) => f.type === 'reply');
    expect(replies[0]).toMatchObject({ seq: 4, requestId: 'r10' });
    expect(replies[1]).toMatchObject({ seq: 5 });
    expect(replies[1]).not.toHaveProperty('requestId');
  });
});

describe('a prompt stopped before its reply', () => {
  it('is answered on a seed socket with an error that names it (a seed client knows no reply.stopped), and on a typed one with reply.stopped', async () => {
    const w = world();
    const seedSocket = w.client();
    const typed = w.client();
    await seedSocket.send({ digitalTwinId: seed.id, prompt: 'hi', conversationId: 'talk', requestId: 'from-seed' });
    await typed.send({ type: 'resume', conversationId: 'talk', afterSeq: 0 });
    const cmd = w.commands()[0]!;
    w.emit(started('talk', null, cmd.commandId));
    w.emit(prompt('talk', 2, cmd.commandId, 'from-seed'));
    // Another socket's stop: the prompt at seq 2 gets no ReplyGenerated.
    w.emit(ev('talk', 3, 'ReplyStopped', { promptSeq: 2, text: 'Buy', heardChars: null }));
    await sleep(5);
    expect(seedSocket.frames).toEqual([expect.objectContaining({ type: 'error', code: 'reply_stopped', conversationId: 'talk', seq: 3, promptSeq: 2, requestId: 'from-seed', digitalTwinId: seed.id })]);
    expect(typed.frames.at(-1)).toMatchObject({ type: 'reply.stopped', seq: 3, promptSeq: 2, text: 'Buy' });
    expect(typed.frames.some((f) => f.type === 'error')).toBe(false);
  });
});

describe('hostile input', () => {
  it('answers every bad frame with one error frame with a code, and publishes nothing', async () => {
    const w = world();
    const c = w.client();
    const deep = (n: number) => '{"a":'.repeat(n) + '1' + '}'.repeat(n);
    const frames = [
      'not json',
      '[]',
      'null',
      '{"type":"dance"}',
      `{"type":"confirm","conversationId":"x","data":{"k":${deep(10_000)}}}`,
      `{"digitalTwinId":"${seed.id}","prompt":${deep(10_000)}}`,
      `{"digitalTwinId":"${seed.id}","prompt":"\\ud800"}`,
      `{"digitalTwinId":"${seed.id}","prompt":"a\\u0000b"}`,
      `{"digitalTwinId":"${seed.id}","prompt":"hi","__proto__":{"admin":true}}`,
      `{"type":"confirm","conversationId":"x","data":{"__proto__":{"admin":true}}}`,
      `{"digitalTwinId":"${seed.id}","prompt":"${'€'.repeat(30_000)}"}`, // 30k characters, 90 KB
      JSON.stringify({ digitalTwinId: 42, prompt: 'x' }),
      JSON.stringify({ digitalTwinId: seed.id, prompt: ['x'] }),
      JSON.stringify({ type: 'resume', conversationId: 'x', afterSeq: -1 }),
      JSON.stringify({ type: 'resume', conversationId: 'x', afterSeq: 1.5 }),
    ];
    for (const f of frames) await c.send(f);
    c.session.onBinary();
    expect(c.frames).toHaveLength(frames.length + 1);
    for (const f of c.frames) expect(f).toMatchObject({ type: 'error', code: expect.any(String) });
    expect(c.frames.map((f) => f.code)).toContain('frame_too_large');
    expect(w.appended).toHaveLength(0);
  });
});

describe('backpressure', () => {
  it('closes a socket whose unread output passes the limit, once, and sends it nothing more', async () => {
    const w = world();
    let buffered = 0;
    const c = w.client(null, () => buffered);
    await c.send({ digitalTwinId: seed.id, prompt: 'hi' });
    const id = w.commands()[0]!.conversationId;
    w.emit(started(id));
    w.emit(reply(id, 3, 2));
    buffered = DEFAULT_LIMITS.maxBufferedBytes + 1;
    w.emit(reply(id, 5, 4));
    w.emit(reply(id, 7, 6));
    await sleep(5);
    expect(c.frames.map((f) => f.seq)).toEqual([3]);
    expect(c.closes).toEqual([[1008, expect.stringContaining('slow consumer')]]);
  });
});

describe('erasure', () => {
  /** A key store in memory: the port, without the database. */
  const memoryKeys = () => {
    const keys = new Map<string, Uint8Array | null>();
    const store: KeyStore = {
      async get(ids) {
        const out = new Map<string, Uint8Array>();
        for (const id of ids) if (keys.get(id)) out.set(id, keys.get(id)!);
        return out;
      },
      async create(id) {
        if (keys.get(id) === null) throw new KeyDestroyed(`conversation ${id} was erased`);
        if (!keys.has(id)) keys.set(id, newDataKey());
        return keys.get(id)!;
      },
      async destroy(id) {
        keys.set(id, null);
        return true;
      },
      forget() {},
    };
    return store;
  };

  it('puts prompts and confirmed data on the log sealed with the conversation\'s key', async () => {
    const keys = memoryKeys();
    const w = world({ keys });
    const c = w.client();
    await c.send({ digitalTwinId: seed.id, prompt: 'my PIN is pin-xyzzy', requestId: 'p' });
    const id = w.commands()[0]!.conversationId;
    await c.send({ type: 'confirm', conversationId: id, data: { name: 'Ann Secretname' } });
    expect(w.appended.map((r) => r.value).join('\n')).not.toMatch(/xyzzy|Secretname/);
    const key = await keys.create(id);
    const opened = w.appended.map((r) => openCommand(WireCommand.parse(JSON.parse(r.value)), key));
    expect(opened.map((cmd) => cmd?.data)).toEqual([{ twin: seed, text: 'my PIN is pin-xyzzy', stream: false }, { data: { name: 'Ann Secretname' } }]);
  });

  it('puts a socket\'s prompts on the log in the order sent, though the first waits for the new conversation\'s key', async () => {
    const keys = memoryKeys();
    let calls = 0;
    // The first create makes the key (slow: a database row and a log record); later ones find it.
    const w = world({ keys: { ...keys, create: async (id) => (calls++ === 0 && (await sleep(20)), keys.create(id)) } });
    const c = w.client();
    await Promise.all(['one', 'two', 'three'].map((text) => c.send({ digitalTwinId: seed.id, prompt: text })));
    const key = await keys.create(w.commands()[0]!.conversationId);
    const texts = w.appended.map((r) => (openCommand(WireCommand.parse(JSON.parse(r.value)), key)?.data as { text: string }).text);
    expect(texts).toEqual(['one', 'two', 'three']);
  });

  it('answers conversation_erased for a conversation whose key is destroyed, and tells its followers when it is erased', async () => {
    const keys = memoryKeys();
    const w = world({ keys });
    const c = w.client();
    await c.send({ type: 'prompt', digitalTwinId: seed.id, prompt: 'hello' });
    const id = w.commands()[0]!.conversationId;
    w.emit(started(id));
    w.emit(ev(id, 4, 'ConversationErased', { by: null, via: 'api', reason: null, prompts: 1, replies: 1, confirmedFields: 0 }));
    await keys.destroy(id);
    await c.send({ digitalTwinId: seed.id, conversationId: id, prompt: 'still there?', requestId: 'late' });
    expect(c.frames).toEqual([
      expect.objectContaining({ type: 'conversation.erased', conversationId: id, seq: 4 }),
      expect.objectContaining({ type: 'error', code: 'conversation_erased', conversationId: id, requestId: 'late', digitalTwinId: seed.id }),
    ]);
    expect(w.appended).toHaveLength(1); // nothing more reached the log
    // Without a conversationId, the next prompt starts a new conversation.
    await c.send({ digitalTwinId: seed.id, prompt: 'a new start' });
    expect(w.commands()[1]!.conversationId).not.toBe(id);
  });
});

describe('seed clients, streaming and stop', () => {
  const own = (w: ReturnType<typeof world>, i = 0) => w.commands()[i]!.commandId;
  const audio = (id: string, seq: number) => ev(id, seq, 'AudioReady', { replySeq: seq - 1, audioId: 'a1', format: 'mp3', durationSec: 1, bytes: 10, voice: 'alloy' });
  const proposed = (id: string, seq: number) => ev(id, seq, 'DataProposed', { replySeq: seq - 2, data: { name: 'Ann' } });

  it('gives a seed client only frames with reply or error; a typed client gets the rest too', async () => {
    const w = world();
    const seedClient = w.client();
    await seedClient.send({ digitalTwinId: seed.id, prompt: 'hi' });
    const typed = w.client();
    await typed.send({ type: 'prompt', digitalTwinId: seed.id, prompt: 'hi' });
    for (const [i, c] of [seedClient, typed].entries()) {
      const id = w.commands()[i]!.conversationId;
      for (const e of [started(id), prompt(id, 2, own(w, i)), reply(id, 3), audio(id, 4), proposed(id, 5)]) w.emit(e);
    }
    expect(seedClient.frames.map((f) => f.type)).toEqual(['reply']);
    expect(seedClient.frames.every((f) => 'reply' in f || 'error' in f)).toBe(true);
    expect(typed.frames.map((f) => f.type)).toEqual(['reply', 'audio', 'data.proposed']);
  });

  it('tells the actor host to stream a reply only when the sending socket shows live text (it asked, now or before and did not take it back, or it resumed)', async () => {
    const w = world({ events: history('c2', 2) });
    const streamOf = (i: number) => (w.commands()[i] as unknown as { data: { stream?: boolean } }).data.stream;
    const seedClient = w.client();
    await seedClient.send({ digitalTwinId: seed.id, prompt: 'hi' });
    const typed = w.client();
    await typed.send({ type: 'prompt', digitalTwinId: seed.id, prompt: 'hi' });
    await typed.send({ type: 'prompt', digitalTwinId: seed.id, prompt: 'and now live', stream: true });
    await typed.send({ type: 'prompt', digitalTwinId: seed.id, prompt: 'still live' });
    const resumer = w.client();
    await resumer.send({ type: 'resume', conversationId: 'c2', afterSeq: 0 });
    await resumer.send({ type: 'prompt', digitalTwinId: seed.id, conversationId: 'c2', prompt: 'after a resume' });
    // Taken back: whole replies again, for this prompt and the next ones.
    await typed.send({ type: 'prompt', digitalTwinId: seed.id, prompt: 'whole again', stream: false });
    await typed.send({ type: 'prompt', digitalTwinId: seed.id, prompt: 'still whole' });
    expect([0, 1, 2, 3, 4, 5, 6].map(streamOf)).toEqual([false, false, true, true, true, false, false]);
  });

  it('streams deltas to the socket that asked, and a socket resuming mid-stream rebuilds the reply without holes or repeats', async () => {
    let soFar: StreamSoFar | null = null;
    const w = world({ events: history('c1', 2), readDelayMs: 20, streaming: () => soFar });
    const a = w.client();
    await a.send({ type: 'prompt', digitalTwinId: seed.id, conversationId: 'c1', prompt: 'q', stream: true });
    const u = (offset: number, text: string) => ({ kind: 'delta' as const, conversationId: 'c1', promptSeq: 2, gen: 'g1', offset, text });
    w.live({ kind: 'start', conversationId: 'c1', promptSeq: 2, gen: 'g1' });
    w.live(u(0, 'Hello '));
    w.live(u(6, 'wor'));
    soFar = { promptSeq: 2, gen: 'g1', text: 'Hello wor' };
    const b = w.client();
    const resumed = b.send({ type: 'resume', conversationId: 'c1', afterSeq: 0 });
    await sleep(5);
    w.live(u(9, 'ld')); // while b reads the read model: held back, then placed after the text so far
    await resumed;
    w.live(u(7, 'orld!')); // overlaps what both have: only the new part goes out
    w.emit(reply('c1', 3, 2));
    w.live(u(12, ' late')); // after the reply: stale
    for (const c of [a, b]) {
      const deltas = c.frames.filter((f) => f.type === 'reply.delta');
      let text = '';
      for (const d of deltas) {
        expect(d.offset).toBe(text.length); // no hole, no repeat
        text += d.text as string;
      }
      expect(text).toBe('Hello world!');
      expect(c.frames.at(-1)).toMatchObject({ type: 'reply', reply: 'a3' });
    }
    expect(b.frames.filter((f) => f.type === 'reply.delta')[0]).toMatchObject({ offset: 0, text: 'Hello wor' });
  });

  it('announces a new generation of a reply it had partly shown with reply.restart, then deltas from 0', async () => {
    const w = world();
    const c = w.client();
    await c.send({ type: 'prompt', digitalTwinId: seed.id, conversationId: 'c1', prompt: 'q', stream: true });
    w.live({ kind: 'start', conversationId: 'c1', promptSeq: 2, gen: 'g1' });
    w.live({ kind: 'delta', conversationId: 'c1', promptSeq: 2, gen: 'g1', offset: 0, text: 'Hel' });
    w.live({ kind: 'start', conversationId: 'c1', promptSeq: 2, gen: 'g2' });
    w.live({ kind: 'delta', conversationId: 'c1', promptSeq: 2, gen: 'g2', offset: 0, text: 'Hi' });
    expect(c.frames.map((f) => `${f.type}:${f.offset ?? ''}`)).toEqual(['reply.delta:0', 'reply.restart:', 'reply.delta:0']);
  });

  it('publishes a stop, and answers nothing_to_stop with the stop\'s requestId', async () => {
    const w = world();
    const c = w.client();
    await c.send({ type: 'stop', conversationId: 'c1', heardChars: 12, requestId: 's1' });
    expect(w.commands()[0]).toMatchObject({ type: 'StopReply', conversationId: 'c1', data: { heardChars: 12 } });
    w.notice({ type: 'rejected', commandId: own(w), conversationId: 'c1', correlationId: 's1', code: 'nothing_to_stop', message: 'no reply is in flight' });
    expect(c.frames).toEqual([expect.objectContaining({ type: 'error', code: 'nothing_to_stop', requestId: 's1' })]);
  });

  it('echoes the requestId in every error that answers a frame: rate limit, validation, authorization, unavailable', async () => {
    const w = world({ limits: { burst: 2, ratePerSec: 0.001 } });
    const c = w.client('bob');
    await c.send({ type: 'prompt', digitalTwinId: seed.id, conversationId: 'alice-1', prompt: 'hi', requestId: 'auth' });
    await c.send({ type: 'prompt', digitalTwinId: seed.id, prompt: 42, requestId: 'bad' });
    await c.send({ type: 'prompt', digitalTwinId: seed.id, prompt: 'hi', requestId: 'flood' });
    w.notice({ type: 'rejected', commandId: own(w), conversationId: 'alice-1', correlationId: 'auth', code: 'forbidden', message: 'not yours' });
    const down = world({ failAppend: true }).client();
    await down.send({ digitalTwinId: seed.id, prompt: 'hi', requestId: 'down' });
    const errors = [...c.frames, ...down.frames].map((f) => `${f.code}:${f.requestId}`);
    expect(errors.sort()).toEqual(['forbidden:auth', 'invalid_frame:bad', 'rate_limited:flood', 'unavailable:down']);
  });
});
