// The reference flow (shared/examples/onboarding.flow.json) over a WebSocket, with no model
// connected, on real Kafka, PostgreSQL and Redis: a seed client registers in Italian, the
// local "CRM" is called once with an idempotency key, the email goes through the webhook,
// and the flow ends with the CRM's code. The README's flow queries run as written.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATABASE_URL } from '../support/env.ts';
import { realEnv } from '../support/env.ts';
import { flowDeployment, startCrm, startWebhook } from '../support/flow-backends.ts';
import { freePort, startGemello } from '../support/processes.ts';
import type { Gemello } from '../support/processes.ts';
import { connect } from '../support/ws-client.ts';

const readme = readFileSync(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8');
const section = readme.split('### For analysts: flows')[1]!.split('\n## ')[0]!;
const queries = [...section.matchAll(/```sql\n([\s\S]*?)```/g)].map((m) => m[1]!.trim());

let crm: Awaited<ReturnType<typeof startCrm>>;
let mail: Awaited<ReturnType<typeof startWebhook>>;
let gemello: Gemello;
let port: number;
let sql: postgres.Sql;
const twin = { digitalTwinId: 'onboarding-it' };

beforeAll(async () => {
  crm = await startCrm();
  mail = await startWebhook();
  const real = realEnv('fl');
  const { flowsDir, twinsFile } = flowDeployment();
  port = await freePort();
  gemello = await startGemello(['serve'], {
    ...real.env, PORT: String(port), OPENAI_API_KEY: '', GEMELLO_SPEECH: 'off',
    GEMELLO_FLOWS_DIR: flowsDir, GEMELLO_TWINS_FILE: twinsFile, GEMELLO_BACKENDS: `crm=${crm.url}`, GEMELLO_EMAIL_WEBHOOK: mail.url,
  });
  sql = postgres(DATABASE_URL, { onnotice: () => {}, connection: { search_path: real.schema } });
}, 90_000);

afterAll(async () => {
  await gemello?.kill();
  await crm?.close();
  await mail?.close();
  await sql?.end();
});

/** Sends a prompt and returns the texts of the replies until one matching `until` arrives. */
async function say(client: Awaited<ReturnType<typeof connect>>, prompt: string, until: RegExp, extra: Record<string, unknown> = {}) {
  client.send({ ...twin, ...extra, prompt });
  const texts: string[] = [];
  for (;;) {
    const f = await client.next((x) => x.type === 'reply' || x.type === 'error', 20_000);
    if (f.type === 'error') throw new Error(`error frame: ${JSON.stringify(f)}`);
    texts.push(f.reply as string);
    if (until.test(f.reply as string)) return { texts, last: f };
  }
}

describe('the reference flow over a WebSocket (no model)', () => {
  it('registers a customer in Italian: name, "3 marzo 1990", a bad email then a good one, confirmations; one CRM call, one email, the CRM code at the end', async () => {
    const client = await connect(`ws://127.0.0.1:${port}/ws`);
    const start = await say(client, 'ciao', /Come ti chiami/);
    expect(start.texts).toEqual(['Benvenuto! Ti faccio qualche domanda per registrarti.', 'Come ti chiami? Nome e cognome, per favore.']);
    const conversationId = start.last.conversationId as string;
    const extra = { conversationId };
    expect((await say(client, 'mi chiamo Giulia Rossi', /giusto\?/, extra)).texts).toEqual(['Ti chiami Giulia Rossi, giusto?']);
    expect((await say(client, 'sì', /data di nascita/, extra)).texts).toEqual(['Qual è la tua data di nascita?']);
    expect((await say(client, '3 marzo 1990', /Sei nato/, extra)).texts).toEqual(['Sei nato il 3 marzo 1990?']);
    expect((await say(client, 'sì', /email/, extra)).texts).toEqual(['Qual è la tua email?']);
    expect((await say(client, 'giulia chiocciola example', /Riprova/, extra)).texts).toEqual(['Non sembra un indirizzo email valido. Riprova.']);
    expect((await say(client, 'giulia.rossi@example.it', /La tua email/, extra)).texts).toEqual(['La tua email è giulia.rossi@example.it?']);
    const end = await say(client, 'sì, esatto', /A presto/, extra);
    expect(end.texts).toEqual(['Grazie Giulia Rossi, sei registrato con il codice C-1. A presto!']);

    expect(crm.requests).toHaveLength(1);
    expect(crm.requests[0]).toMatchObject({ method: 'POST', path: '/customers', body: { name: 'Giulia Rossi', email: 'giulia.rossi@example.it', birthDate: '1990-03-03' } });
    expect(crm.requests[0]!.key).toMatch(new RegExp(`^gemello:${conversationId}:register:\\d+$`));
    expect(mail.received).toHaveLength(1);
    expect(mail.received[0]!.body).toEqual({ to: 'giulia.rossi@example.it', subject: 'Registrazione completata', text: 'Ciao Giulia Rossi, il tuo codice cliente è C-1.' });
    expect(mail.received[0]!.key).toMatch(new RegExp(`^gemello:${conversationId}:mail:\\d+$`));
    // A seed client gets only what the seed protocol knows.
    expect(client.frames.every((f) => f.type === 'reply')).toBe(true);
    client.close();
  });

  it('hands a minor over to an operator, and a typed client sees where the flow is', async () => {
    const client = await connect(`ws://127.0.0.1:${port}/ws`);
    const typed = { type: 'prompt' };
    const { last } = await say(client, 'ciao', /Come ti chiami/, typed);
    const extra = { ...typed, conversationId: last.conversationId };
    await say(client, 'sono Luca Bianchi', /giusto/, extra);
    await say(client, 'sì', /nascita/, extra);
    await say(client, '03/03/2015', /Sei nato il 3 marzo 2015/, extra);
    await say(client, 'sì', /email/, extra);
    await say(client, 'luca@example.it', /email è/, extra);
    expect((await say(client, 'sì', /operatore/, extra)).texts).toEqual(['Per i minorenni ti passo a un operatore.']);
    const handedOver = await client.next((f) => f.type === 'flow' && f.state === 'transferred');
    expect(handedOver).toMatchObject({ conversationId: last.conversationId, task: 'minor', to: 'operator' });
    expect(await client.next((f) => f.type === 'flow' && f.state === 'ended')).toMatchObject({ reason: 'transferred' });
    expect(client.frames.some((f) => f.type === 'flow' && f.task === 'collect' && f.state === 'running')).toBe(true);
    client.close();
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).toMatch(/gemello_flow_transfers_total\{[^}]*flow="onboarding"[^}]*\} 1/);
    expect(crm.requests).toHaveLength(1); // no backend call for a minor
  });

  it('answers the README\'s flow queries as written', async () => {
    expect(queries.length).toBe(4);
    // The projector catches up on its own; wait for both flows to be projected as ended.
    const end = Date.now() + 15_000;
    while ((await sql`SELECT count(*)::int AS n FROM flow_runs WHERE status <> 'running'`)[0]!.n < 2) {
      if (Date.now() > end) throw new Error('the flows were not projected');
      await new Promise((r) => setTimeout(r, 100));
    }
    const [runs, values, calls, handed] = await Promise.all(queries.map((q) => sql.unsafe(q)));
    expect(runs!.map((r) => [r.status, Number(r.conversations)])).toEqual([['completed', 1], ['transferred', 1]]);
    expect(values).toEqual(expect.arrayContaining([
      expect.objectContaining({ node: 'fullName', read_by: 'parser', reads: '2', confirmed: '2' }),
      expect.objectContaining({ node: 'email', read_by: 'parser', reads: '2', confirmed: '2' }),
    ]));
    expect(calls!.map((c) => [c.backend, c.task, c.status, c.calls])).toEqual([['crm', 'register', 'ok', '1'], ['email', 'mail', 'ok', '1']]);
    expect(handed!.map((h) => [h.current_task, h.handed_over_to])).toEqual([['minor', 'operator']]);
    // What the user said is sealed in the log but readable in the read model (the projector holds the keys).
    const [msg] = await sql`SELECT content FROM messages WHERE content LIKE 'Grazie Giulia Rossi%'`;
    expect(msg).toBeDefined();
  });
});
