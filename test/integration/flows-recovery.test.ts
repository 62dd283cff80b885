// Flows survive their actor host: on real Kafka, PostgreSQL and Redis, with a gateway (and
// the projections) in one process and the actor host in another, SIGKILLed while a backend
// call is on its way and while a data node waits for the user; the host started in its
// place has version 2 of the flow deployed. The CRM sees the same idempotency key again
// (one customer), the flow ends once, on version 1; the noInput timer of the waiting
// conversation fires after the restart, from the node state it had.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readConversation } from '../../cli/read-conversation.ts';
import { KAFKA_BROKERS } from '../support/env.ts';
import { realEnv } from '../support/env.ts';
import { flowDeployment, REFERENCE_FLOW, startCrm, startWebhook } from '../support/flow-backends.ts';
import { kafkaLog } from '../support/kafka.ts';
import { freePort, startGemello } from '../support/processes.ts';
import type { Gemello } from '../support/processes.ts';
import { connect } from '../support/ws-client.ts';

const PARTITIONS = 2;
const twin = { digitalTwinId: 'onboarding-it' };
let crm: Awaited<ReturnType<typeof startCrm>>;
let mail: Awaited<ReturnType<typeof startWebhook>>;
const procs: Gemello[] = [];

beforeAll(async () => {
  crm = await startCrm();
  mail = await startWebhook();
});
afterAll(async () => {
  await Promise.all(procs.map((p) => p.kill('SIGKILL')));
  await crm?.close();
  await mail?.close();
});

type Client = Awaited<ReturnType<typeof connect>>;
async function say(client: Client, prompt: string, until: RegExp, conversationId?: string): Promise<{ texts: string[]; conversationId: string }> {
  client.send({ ...twin, prompt, ...(conversationId ? { conversationId } : {}) });
  const texts: string[] = [];
  for (;;) {
    const f = await client.next((x) => x.type === 'reply' || x.type === 'error', 30_000);
    if (f.type === 'error') throw new Error(`error frame: ${JSON.stringify(f)}`);
    texts.push(f.reply as string);
    if (until.test(f.reply as string)) return { texts, conversationId: f.conversationId as string };
  }
}

describe('flows across a crash of their actor host', () => {
  it('calls the CRM again with the same key after a SIGKILL, ends once on version 1, and fires a noInput timer after the restart', async () => {
    const real = realEnv('flr');
    const deployment = flowDeployment();
    const env = {
      ...real.env, OPENAI_API_KEY: '', GEMELLO_SPEECH: 'off', GEMELLO_PARTITIONS: String(PARTITIONS), GEMELLO_KAFKA_SESSION_TIMEOUT_MS: '6000',
      GEMELLO_FLOWS_DIR: deployment.flowsDir, GEMELLO_TWINS_FILE: deployment.twinsFile, GEMELLO_BACKENDS: `crm=${crm.url}`, GEMELLO_EMAIL_WEBHOOK: mail.url,
      GEMELLO_NO_INPUT_SECONDS: '6',
    };
    const port = await freePort();
    procs.push(await startGemello(['serve', '--roles', 'gateway,projections'], { ...env, PORT: String(port) }));
    const first = await startGemello(['actors'], env);
    procs.push(first);
    await first.waitFor(() => first.owned().length === PARTITIONS, 'the actor host to own every partition');
    const url = `ws://127.0.0.1:${port}/ws`;
    const log = kafkaLog({ brokers: KAFKA_BROKERS, partitions: PARTITIONS, namespace: real.namespace });
    const clients: Client[] = [];
    try {
      // X: through the data dialogue up to the backend call, which the CRM keeps unanswered.
      const a = await connect(url);
      clients.push(a);
      const x = (await say(a, 'ciao', /Come ti chiami/)).conversationId;
      await say(a, 'mi chiamo Giulia Rossi', /giusto/, x);
      await say(a, 'sì', /nascita/, x);
      await say(a, '3 marzo 1990', /Sei nato/, x);
      await say(a, 'sì', /email/, x);
      await say(a, 'giulia.rossi@example.it', /email è/, x);
      crm.hold();
      a.send({ ...twin, conversationId: x, prompt: 'sì' });
      const deadline = Date.now() + 15_000;
      while (crm.requests.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      expect(crm.requests).toHaveLength(1);

      // Y: in the middle of its first node, after a noMatch; its noInput timer is due in 6 s (margin for a loaded machine).
      const b = await connect(url);
      clients.push(b);
      const y = (await say(b, 'ciao', /Come ti chiami/)).conversationId;
      expect((await say(b, '12345', /Non ho capito il nome/, y)).texts).toEqual(['Non ho capito il nome. Puoi ripeterlo?']);

      // Version 2 is deployed while they are in flight; the host dies before X's result or Y's timer is recorded.
      const v2 = JSON.parse(readFileSync(REFERENCE_FLOW, 'utf8'));
      v2.tasks.welcome.text = 'Benvenuto nella versione 2!';
      v2.tasks.bye.text = 'Versione 2: grazie {{customer.fullName}}, codice {{crm.id}}.';
      v2.ddts.customer.nodes[0].noInput = ['Versione 2: ci sei?'];
      deployment.write(v2);
      await first.kill('SIGKILL');
      expect(b.frames.filter((f) => /Sei ancora lì/.test(String(f.reply)))).toHaveLength(0);

      const second = await startGemello(['actors'], env);
      procs.push(second);

      // X finishes on version 1, with the customer the first call made.
      const bye = await a.next((f) => f.type === 'reply' && /registrato/.test(String(f.reply)), 45_000);
      expect(bye.reply).toBe('Grazie Giulia Rossi, sei registrato con il codice C-1. A presto!');
      expect(crm.requests).toHaveLength(2);
      expect(crm.requests[1]!.key).toBe(crm.requests[0]!.key);
      expect(crm.requests[0]!.key).toMatch(new RegExp(`^gemello:${x}:register:\\d+$`));
      expect(crm.created()).toBe(1);
      expect(mail.received.filter((m) => (m.body as { to: string }).to === 'giulia.rossi@example.it')).toHaveLength(1);

      // Y's timer fires on the new host, with version 1's text, and the dialogue goes on from the same node.
      const noInput = await b.next((f) => f.type === 'reply' && f.conversationId === y, 30_000);
      expect(noInput.reply).toBe('Sei ancora lì? Dimmi il tuo nome e cognome.');
      expect((await say(b, 'mi chiamo Anna Verdi', /giusto/, y)).texts).toEqual(['Ti chiami Anna Verdi, giusto?']);

      // A conversation started now runs version 2.
      const c = await connect(url);
      expect((await say(c, 'ciao', /Come ti chiami/)).texts[0]).toBe('Benvenuto nella versione 2!');
      for (const client of [a, b, c]) client.close();

      const xs = await readConversation(log, x);
      expect(xs.map((e) => e.seq)).toEqual(xs.map((_, i) => i + 1));
      expect(xs.filter((e) => e.type === 'BackendCalled' && (e.data as { task: string }).task === 'register')).toHaveLength(1);
      expect(xs.filter((e) => e.type === 'FlowEnded')).toHaveLength(1);
      const ys = await readConversation(log, y);
      const said = ys.filter((e) => e.type === 'MessageSaid').map((e) => (e.data as { kind: string }).kind);
      expect(said).toEqual(['say', 'ask', 'noMatch', 'noInput', 'confirm']);
      const versions = new Set([...xs, ...ys].filter((e) => e.type === 'FlowStarted').map((e) => (e.data as { version: string }).version));
      expect(versions.size).toBe(1);
    } catch (err) {
      // What the processes said, to see where a flow stopped.
      for (const p of procs) console.error(p.output().slice(-3000));
      console.error(JSON.stringify({ crm: crm.requests.map((q) => q.key), created: crm.created(), mail: mail.received.length, frames: clients.map((c) => c.frames.slice(-6)) }));
      throw err;
    } finally {
      await log.close();
    }
  }, 150_000);
});
