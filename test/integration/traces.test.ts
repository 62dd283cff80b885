// One OpenTelemetry trace follows a prompt from the socket, through Kafka, the actor, the
// model call and the projections, back to the socket; and the spans leave the process by
// OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set. Real Kafka, Postgres and Redis,
// with the whole runtime in this process.
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { serve, upgradeWebSocket } from '@hono/node-server';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import { WebSocketServer } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../gateway/app.ts';
import { loadConfig } from '../../runtime/config.ts';
import { ALL_ROLES, createRuntime } from '../../runtime/wire.ts';
import type { Runtime } from '../../runtime/wire.ts';
import { createLogger } from '../../telemetry/logger.ts';
import { startTelemetry } from '../../telemetry/sdk.ts';
import type { Telemetry } from '../../telemetry/sdk.ts';
import { realEnv } from '../support/env.ts';
import { startFakeOpenAI } from '../support/fake-openai.ts';
import { flowDeployment, startCrm, startWebhook } from '../support/flow-backends.ts';
import { connect } from '../support/ws-client.ts';

const env = {
  ...realEnv('traces').env,
  GEMELLO_PARTITIONS: '3',
  GEMELLO_SPEECH: 'off',
  // A snapshot after every append, so the trace shows snapshot.write too.
  GEMELLO_SNAPSHOT_EVERY: '1',
  GEMELLO_LOG_QUIET: '1',
};
const logger = createLogger('traces-test', true);
const seed = { digitalTwinId: 'warren-buffett-001', digitalTwinName: 'Warren Buffett' };

/** The whole runtime on `env` in this process, its gateway on a free port. */
async function serveRuntime(env: Record<string, string>) {
  const rt = await createRuntime(loadConfig(env), ALL_ROLES, logger);
  await rt.start();
  const wss = new WebSocketServer({ noServer: true });
  const { app, close } = createApp(rt.appDeps!, upgradeWebSocket);
  let server!: ReturnType<typeof serve>;
  const port = await new Promise<number>((resolve) => {
    server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1', websocket: { server: wss } }, (info) => resolve(info.port));
  });
  return {
    rt,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    async stop() {
      close();
      await new Promise<void>((r) => server.close(() => r()));
      await rt.stop();
    },
  };
}

let served: Awaited<ReturnType<typeof serveRuntime>> | null = null;
let rt: Runtime;
let wsUrl: string;
let telemetry: Telemetry | null = null;

beforeAll(async () => {
  served = await serveRuntime(env);
  ({ rt, wsUrl } = served);
});

afterAll(async () => {
  await telemetry?.shutdown();
  await served?.stop();
});

/** Sends one prompt on a new socket; resolves with the reply frame. */
async function prompt(text: string) {
  const client = await connect(wsUrl);
  try {
    client.send({ ...seed, prompt: text });
    return await client.next((f) => f.type === 'reply' || f.type === 'error', 30_000);
  } finally {
    client.close();
  }
}

async function until<T>(what: string, probe: () => T | null | undefined | false, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('traces', () => {
  it('one trace covers a prompt from ws.receive to ws.send, across the Kafka hop, with its parents, attributes and services', async () => {
    const memory = new InMemorySpanExporter();
    telemetry = await startTelemetry(env, ALL_ROLES, logger, { exporter: memory });

    const reply = await prompt('What is a moat?');
    expect(reply).toMatchObject({ type: 'reply', seq: 3 });
    const conversationId = reply.conversationId as string;

    const receive = await until('ws.receive', () => memory.getFinishedSpans().find((s) => s.name === 'ws.receive' && s.attributes['conversation.id'] === conversationId));
    const traceId = receive.spanContext().traceId;
    const inTrace = () => memory.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
    const has = (name: string, seq: number) => inTrace().some((s) => s.name === name && s.attributes['event.seq'] === seq);
    // The projection and the snapshot of the reply may finish after the reply frame went out.
    await until('the reply projected and snapshotted', () => has('projection.apply', 3) && has('snapshot.write', 3));
    const spans = inTrace();
    await telemetry.shutdown();
    telemetry = null;

    const one = (name: string, match: (s: ReadableSpan) => boolean = () => true) => {
      const found = spans.filter((s) => s.name === name && match(s));
      expect(found, `${name} spans in the trace`).toHaveLength(1);
      return found[0]!;
    };
    const seqIs = (seq: number) => (s: ReadableSpan) => s.attributes['event.seq'] === seq;
    const produce = one('kafka.produce');
    const handle = one('actor.handle');
    const promptAppend = one('event.append', seqIs(1)); // ConversationStarted + PromptReceived
    const llm = one('llm.chat');
    const replyAppend = one('event.append', seqIs(3)); // ReplyGenerated
    const send = one('ws.send');
    const projected = [1, 2, 3].map((seq) => one('projection.apply', seqIs(seq)));
    const replySnapshot = one('snapshot.write', seqIs(3));

    // The tree (parent ← child):
    //   ws.receive ← kafka.produce ← actor.handle (over Kafka: the command's traceparent header)
    //   actor.handle ← event.append(seq 1..2) ← projection.apply(1), projection.apply(2), snapshot.write(2)
    //   actor.handle ← llm.chat ← event.append(seq 3) ← projection.apply(3), snapshot.write(3), ws.send
    //   (under an append: over Kafka again, through the event envelope's traceparent)
    const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId;
    const id = (s: ReadableSpan) => s.spanContext().spanId;
    expect(parentOf(receive)).toBeUndefined();
    expect(parentOf(produce)).toBe(id(receive));
    expect(parentOf(handle)).toBe(id(produce));
    expect(parentOf(promptAppend)).toBe(id(handle));
    expect(parentOf(llm)).toBe(id(handle));
    expect(parentOf(replyAppend)).toBe(id(llm));
    expect(parentOf(projected[0]!)).toBe(id(promptAppend));
    expect(parentOf(projected[1]!)).toBe(id(promptAppend));
    expect(parentOf(projected[2]!)).toBe(id(replyAppend));
    expect(parentOf(replySnapshot)).toBe(id(replyAppend));
    expect(parentOf(send)).toBe(id(replyAppend));
    for (const s of spans.filter((x) => x.name === 'snapshot.write')) expect([id(promptAppend), id(replyAppend)]).toContain(parentOf(s));
    // Only the frame that went out has a ws.send: ConversationStarted and PromptReceived send none.
    expect(send.attributes['event.seq']).toBe(3);
    expect(new Set(spans.map((s) => s.name))).toEqual(new Set(['ws.receive', 'kafka.produce', 'actor.handle', 'event.append', 'llm.chat', 'projection.apply', 'snapshot.write', 'ws.send']));

    // Services, by the resource each span was recorded under.
    const service = (s: ReadableSpan) => s.resource.attributes['service.name'];
    for (const s of [receive, produce, send]) expect(service(s), s.name).toBe('gemello-gateway');
    for (const s of [handle, promptAppend, llm, replyAppend, replySnapshot]) expect(service(s), s.name).toBe('gemello-actors');
    for (const s of projected) expect(service(s), s.name).toBe('gemello-projections');

    // Attributes: every span names the conversation; the rest where they belong.
    for (const s of spans) expect(s.attributes['conversation.id'], s.name).toBe(conversationId);
    for (const s of [receive, handle, llm, send]) expect(s.attributes['twin.id'], s.name).toBe(seed.digitalTwinId);
    const kafka = (s: ReadableSpan) => ({ partition: s.attributes['messaging.kafka.partition'], offset: s.attributes['messaging.kafka.offset'] });
    // The actor handled the very record the gateway produced.
    expect(kafka(produce).offset).toEqual(expect.any(Number));
    expect(kafka(handle)).toEqual(kafka(produce));
    const eventsPartition = kafka(promptAppend).partition;
    expect(eventsPartition).toBe(kafka(produce).partition); // same key, same partition count
    expect(kafka(replyAppend).partition).toBe(eventsPartition);
    const promptOffset = kafka(promptAppend).offset as number;
    expect(projected.map(kafka)).toEqual([
      { partition: eventsPartition, offset: promptOffset },
      { partition: eventsPartition, offset: promptOffset + 1 },
      kafka(replyAppend),
    ]);
    expect(llm.attributes['event.seq']).toBe(2); // the prompt it answers

    // The envelopes in the read model carry the context of the append that wrote them.
    const rows = await rt.backends.db.query<{ seq: number; traceparent: string }>('SELECT seq, traceparent FROM events WHERE conversation_id = $1 ORDER BY seq', [conversationId]);
    expect(rows.map((r) => [Number(r.seq), r.traceparent])).toEqual([
      [1, `00-${traceId}-${id(promptAppend)}-01`],
      [2, `00-${traceId}-${id(promptAppend)}-01`],
      [3, `00-${traceId}-${id(replyAppend)}-01`],
    ]);
  });

  it('hangs the snapshot written for a confirmation under the append of its DataConfirmed', async () => {
    const memory = new InMemorySpanExporter();
    telemetry = await startTelemetry(env, ALL_ROLES, logger, { exporter: memory });
    try {
      const client = await connect(wsUrl);
      client.send({ ...seed, prompt: 'about to confirm' });
      const conversationId = (await client.next((f) => f.type === 'reply', 30_000)).conversationId as string;
      client.send({ type: 'confirm', conversationId, data: { name: 'Ann Example' } });
      const confirmed = await client.next((f) => f.type === 'data.confirmed' || f.type === 'error', 30_000);
      expect(confirmed).toMatchObject({ type: 'data.confirmed' });
      client.close();
      const spans = () => memory.getFinishedSpans().filter((x) => x.attributes['conversation.id'] === conversationId);
      // Every snapshot of that seq (the confirmation's, and the one GEMELLO_SNAPSHOT_EVERY makes due) is a child of its append.
      await until('the confirmation\'s snapshot', () => spans().filter((x) => x.name === 'snapshot.write' && x.attributes['event.seq'] === confirmed.seq).length >= 1);
      await new Promise((r) => setTimeout(r, 300));
      const appends = new Map(spans().filter((x) => x.name === 'event.append').map((x) => [x.spanContext().spanId, x]));
      const snapshots = spans().filter((x) => x.name === 'snapshot.write' && x.attributes['event.seq'] === confirmed.seq);
      expect(snapshots.map((x) => appends.get(x.parentSpanContext?.spanId ?? '')?.attributes['event.seq'] ?? 'not under an append')).toEqual(snapshots.map(() => confirmed.seq));
    } finally {
      await telemetry.shutdown();
      telemetry = null;
    }
  });

  it("records each reply's speech in its prompt's trace, also when it waited behind the speech of the reply before", async () => {
    const fake = await startFakeOpenAI();
    // The first reply's speech takes long enough for the second reply to be written meanwhile:
    // a conversation records one reply's speech at a time, so the second one's is recorded
    // from where the first one's was (it carried the first prompt's trace before).
    fake.setSpeechLatency(1_500);
    const speaking = await serveRuntime({ ...realEnv('tracesspeech').env, GEMELLO_PARTITIONS: '3', GEMELLO_LOG_QUIET: '1', OPENAI_API_KEY: 'k', OPENAI_BASE_URL: fake.url, GEMELLO_MODEL_RETRIES: '0' });
    telemetry = await startTelemetry(env, ALL_ROLES, logger, { exporter: new InMemorySpanExporter() });
    try {
      const client = await connect(speaking.wsUrl);
      client.send({ type: 'prompt', ...seed, prompt: 'first' });
      const first = await client.next((f) => f.type === 'reply', 30_000);
      const conversationId = first.conversationId as string;
      client.send({ type: 'prompt', ...seed, prompt: 'second', conversationId });
      await client.next((f) => f.type === 'reply' && f.seq !== first.seq, 30_000);
      client.close();
      type Row = { seq: number; type: string; data: { replySeq?: number }; traceparent: string | null };
      let rows: Row[] = [];
      for (let i = 0; i < 200 && rows.filter((r) => r.type === 'AudioReady').length < 2; i++) {
        rows = await speaking.rt.backends.db.query<Row>('SELECT seq, type, data, traceparent FROM events WHERE conversation_id = $1 ORDER BY seq', [conversationId]);
        await new Promise((r) => setTimeout(r, 50));
      }
      const traceOf = (traceparent: string | null) => traceparent?.split('-')[1] ?? null;
      const spoken = rows.filter((r) => r.type === 'AudioReady').map((a) => ({ audio: traceOf(a.traceparent), reply: traceOf(rows.find((r) => r.seq === a.data.replySeq && r.type === 'ReplyGenerated')?.traceparent ?? null) }));
      expect(spoken).toHaveLength(2);
      // Each in its own reply's trace, and the two replies' traces are two.
      for (const s of spoken) expect(s.audio).not.toBeNull();
      for (const s of spoken) expect(s.audio).toBe(s.reply);
      expect(spoken[0]!.reply).not.toBe(spoken[1]!.reply);
    } finally {
      await telemetry.shutdown();
      telemetry = null;
      await speaking.stop();
      await fake.close();
    }
  }, 60_000);

  it("records a flow's backend calls in the trace of the prompt that led to them", async () => {
    const crm = await startCrm();
    const mail = await startWebhook();
    const { flowsDir, twinsFile } = flowDeployment();
    const flowing = await serveRuntime({
      ...realEnv('tracesflow').env, GEMELLO_PARTITIONS: '3', GEMELLO_LOG_QUIET: '1', GEMELLO_SPEECH: 'off', OPENAI_API_KEY: '',
      GEMELLO_FLOWS_DIR: flowsDir, GEMELLO_TWINS_FILE: twinsFile, GEMELLO_BACKENDS: `crm=${crm.url}`, GEMELLO_EMAIL_WEBHOOK: mail.url,
    });
    telemetry = await startTelemetry(env, ALL_ROLES, logger, { exporter: new InMemorySpanExporter() });
    try {
      const client = await connect(flowing.wsUrl);
      let conversationId: string | undefined;
      const say = async (prompt: string, until: RegExp) => {
        client.send({ type: 'prompt', digitalTwinId: 'onboarding-it', prompt, ...(conversationId ? { conversationId } : {}) });
        for (;;) {
          const f = await client.next((x) => x.type === 'reply' || x.type === 'error', 20_000);
          if (f.type === 'error') throw new Error(`error frame: ${JSON.stringify(f)}`);
          conversationId = f.conversationId as string;
          if (until.test(f.reply as string)) return;
        }
      };
      for (const [prompt, until] of [['ciao', /Come ti chiami/], ['mi chiamo Giulia Rossi', /giusto/], ['sì', /nascita/], ['3 marzo 1990', /Sei nato/], ['sì', /email/], ['giulia@example.it', /email è/]] as const) await say(prompt, until);
      await say('sì, esatto', /A presto/);
      client.close();
      type Row = { seq: number; type: string; data: { text?: string }; traceparent: string | null };
      let rows: Row[] = [];
      for (let i = 0; i < 200 && !rows.some((r) => r.type === 'FlowEnded'); i++) {
        rows = await flowing.rt.backends.db.query<Row>('SELECT seq, type, data, traceparent FROM events WHERE conversation_id = $1 ORDER BY seq', [conversationId]);
        await new Promise((r) => setTimeout(r, 50));
      }
      const traceOf = (r: Row | undefined) => r?.traceparent?.split('-')[1] ?? null;
      const lastPrompt = rows.filter((r) => r.type === 'PromptReceived').at(-1);
      const calls = rows.filter((r) => r.type === 'BackendCalled');
      expect(calls).toHaveLength(2); // the CRM, then the email
      expect(traceOf(lastPrompt)).not.toBeNull();
      for (const c of calls) expect(traceOf(c), `BackendCalled at seq ${c.seq}`).toBe(traceOf(lastPrompt));
      // And the prompts before it each have a trace of their own.
      expect(new Set(rows.filter((r) => r.type === 'PromptReceived').map(traceOf)).size).toBe(7);
    } finally {
      await telemetry.shutdown();
      telemetry = null;
      await flowing.stop();
      await crm.close();
      await mail.close();
    }
  }, 90_000);

  describe('OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT', () => {
    type Post = { path: string; contentType: string; body: Buffer };
    let collector: Server;
    let endpoint: string;
    const posts: Post[] = [];

    beforeAll(async () => {
      collector = createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          posts.push({ path: `${req.method} ${req.url}`, contentType: String(req.headers['content-type']), body: Buffer.concat(chunks) });
          res.writeHead(200, { 'content-type': req.headers['content-type'] ?? 'application/json' }).end(req.headers['content-type'] === 'application/json' ? '{}' : '');
        });
      });
      await new Promise<void>((r) => collector.listen(0, '127.0.0.1', r));
      endpoint = `http://127.0.0.1:${(collector.address() as { port: number }).port}`;
    });
    afterAll(() => new Promise<void>((r) => collector.close(() => r())));

    const ALL = ['ws.receive', 'kafka.produce', 'actor.handle', 'llm.chat', 'event.append', 'projection.apply', 'snapshot.write', 'ws.send'];

    it('with http/json, POSTs /v1/traces: every span of the prompt, under the three services', async () => {
      posts.length = 0;
      telemetry = await startTelemetry({ ...env, OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json', OTEL_BSP_SCHEDULE_DELAY: '50' }, ALL_ROLES, logger);
      const reply = await prompt('Why Coca-Cola?');
      expect(reply).toMatchObject({ type: 'reply' });

      type OtlpSpan = { name: string; traceId: string; attributes: { key: string; value: { stringValue?: string } }[] };
      type Export = { resourceSpans: { resource: { attributes: { key: string; value: { stringValue?: string } }[] }; scopeSpans: { spans: OtlpSpan[] }[] }[] };
      const received = () => posts.flatMap((p) => (JSON.parse(p.body.toString()) as Export).resourceSpans.flatMap((rs) => {
        const service = rs.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue;
        return rs.scopeSpans.flatMap((ss) => ss.spans.map((s) => ({ service, ...s })));
      }));
      const ofConversation = () => {
        const receive = received().find((s) => s.name === 'ws.receive' && s.attributes.some((a) => a.key === 'conversation.id' && a.value.stringValue === reply.conversationId));
        return receive ? received().filter((s) => s.traceId === receive.traceId) : [];
      };
      const spans = await until('every span of the prompt at the collector', () => {
        const got = ofConversation();
        return ALL.every((n) => got.some((s) => s.name === n)) && got;
      });
      await telemetry.shutdown();
      telemetry = null;

      expect(new Set(posts.map((p) => p.path))).toEqual(new Set(['POST /v1/traces']));
      expect(new Set(posts.map((p) => p.contentType))).toEqual(new Set(['application/json']));
      const services = new Map(spans.map((s) => [s.name, s.service]));
      expect(Object.fromEntries(services)).toEqual({
        'ws.receive': 'gemello-gateway',
        'kafka.produce': 'gemello-gateway',
        'ws.send': 'gemello-gateway',
        'actor.handle': 'gemello-actors',
        'llm.chat': 'gemello-actors',
        'event.append': 'gemello-actors',
        'snapshot.write': 'gemello-actors',
        'projection.apply': 'gemello-projections',
      });
    });

    it('with the default protocol (http/protobuf), POSTs /v1/traces as protobuf', async () => {
      posts.length = 0;
      telemetry = await startTelemetry({ ...env, OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_BSP_SCHEDULE_DELAY: '50' }, ALL_ROLES, logger);
      const reply = await prompt('And Apple?');
      expect(reply).toMatchObject({ type: 'reply' });
      // Protobuf carries strings as their UTF-8 bytes: enough to find the names without a decoder.
      const body = () => Buffer.concat(posts.map((p) => p.body));
      await until('the prompt\'s spans at the collector', () => body().includes(String(reply.conversationId)) && ALL.every((n) => body().includes(n)));
      await telemetry.shutdown();
      telemetry = null;
      expect(new Set(posts.map((p) => `${p.path} ${p.contentType}`))).toEqual(new Set(['POST /v1/traces application/x-protobuf']));
      for (const service of ['gemello-gateway', 'gemello-actors', 'gemello-projections']) expect(body().includes(service), service).toBe(true);
    });
  });
});
