// A flow's side effects over real HTTP to a local server: the same idempotency key on every
// attempt, retries on 5xx and timeouts (not on 4xx), the rendered body, the SMS webhook.
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFlowEffects, MAX_RESULT_BYTES } from '../../actors/flow-effects.ts';
import { compileFlow } from '../../flows/compile.ts';
import type { FlowState } from '../../flows/state.ts';

type Seen = { path: string; key: string | undefined; body: unknown };
const seen: Seen[] = [];
let answer: (n: number, res: ServerResponse) => void = (_n, res) => res.writeHead(200).end('{}');
const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
  let text = '';
  for await (const c of req) text += c;
  seen.push({ path: req.url!, key: req.headers['idempotency-key'] as string | undefined, body: text ? JSON.parse(text) : null });
  answer(seen.length, res);
});
let base = '';
beforeAll(async () => {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

const def = {
  id: 'fx', start: 'ask', tasks: {
    ask: { type: 'getData', ddt: 'c', next: 'call' },
    call: { type: 'backendCall', backend: 'crm', path: '/customers/{{c.id}}', body: { name: '{{c.name}}', n: '{{c.n}}' }, saveAs: 'crm', timeoutMs: 300, retries: 2, next: 'sms' },
    sms: { type: 'sendSms', to: '{{c.phone}}', text: 'Ciao {{c.name}}', next: 'bye' },
    bye: { type: 'end' },
  },
  ddts: { c: { nodes: ['id', 'name', 'n', 'phone'].map((name) => ({ name, type: name === 'n' ? 'number' : 'string', ask: `${name}?` })) } },
};
const r = compileFlow(def, { backends: ['crm'], email: false, sms: true });
if (!r.ok) throw new Error(JSON.stringify(r.errors));
const flow = r.flow;
const state = (task: 'call' | 'sms'): FlowState => ({
  flowId: 'fx', version: flow.version, definition: flow.definition as Record<string, unknown>, status: 'running', task, taskSeq: 7,
  memory: { c: { id: 'a b', name: 'Giulia', n: 3, phone: '+39347' } }, effect: { task, kind: task === 'call' ? 'http' : 'sms', key: `gemello:c1:${task}:7` },
});
const effects = () => createFlowEffects({ backends: { crm: base }, emailWebhook: null, smsWebhook: `${base}/sms`, backoffMs: 1 });
const now = () => new Date('2026-12-01T10:00:00Z');

describe('flow side effects', () => {
  it('retries a 503 with the same key and records the result with its attempts', async () => {
    seen.length = 0;
    answer = (n, res) => (n === 1 ? res.writeHead(503).end() : res.writeHead(201, { 'content-type': 'application/json' }).end('{"id":"C-9"}'));
    const out = await effects().run(flow, state('call'), now);
    expect(out).toMatchObject({ type: 'RecordFlowEffect', key: 'gemello:c1:call:7', backend: 'crm', status: 'ok', httpStatus: 201, attempts: 2, result: { id: 'C-9' } });
    expect(seen.map((s) => s.key)).toEqual(['gemello:c1:call:7', 'gemello:c1:call:7']);
    // Templates: the path is URL-encoded, a lone placeholder keeps its type.
    expect(seen[0]).toMatchObject({ path: '/customers/a%20b', body: { name: 'Giulia', n: 3 } });
  });

  it('does not retry a 4xx: the flow goes to onError with it', async () => {
    seen.length = 0;
    answer = (_n, res) => res.writeHead(422, { 'content-type': 'application/json' }).end('{"error":"email taken"}');
    const out = await effects().run(flow, state('call'), now);
    expect(out).toMatchObject({ status: 'error', httpStatus: 422, attempts: 1, error: 'HTTP 422', result: { error: 'email taken' } });
    expect(seen).toHaveLength(1);
  });

  it('gives up after the retries when the backend does not answer in time', async () => {
    seen.length = 0;
    answer = () => {}; // never answers
    const out = await effects().run(flow, state('call'), now);
    expect(out).toMatchObject({ status: 'error', httpStatus: null, attempts: 3, error: 'no answer within 300 ms' });
    expect(seen).toHaveLength(3);
  });

  it('refuses an answer too large to be recorded: the flow goes to onError with why, instead of waiting on a record that never lands', async () => {
    seen.length = 0;
    const huge = JSON.stringify({ blob: 'x'.repeat(MAX_RESULT_BYTES) });
    answer = (_n, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(huge);
    const out = await effects().run(flow, state('call'), now);
    expect(out).toMatchObject({ status: 'error', httpStatus: 200, attempts: 1, result: null, error: `the answer was ${huge.length} bytes; a flow keeps at most ${MAX_RESULT_BYTES}` });
    expect(seen).toHaveLength(1);
  });

  it('sends an SMS through its webhook with the key', async () => {
    seen.length = 0;
    answer = (_n, res) => res.writeHead(202).end();
    const out = await effects().run(flow, state('sms'), now);
    expect(out).toMatchObject({ status: 'ok', backend: 'sms', httpStatus: 202, result: null });
    expect(seen).toEqual([{ path: '/sms', key: 'gemello:c1:sms:7', body: { to: '+39347', text: 'Ciao Giulia' } }]);
  });
});
