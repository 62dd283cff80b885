import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REFERENCE_FLOW = fileURLToPath(new URL('../../flows/examples/onboarding.flow.json', import.meta.url));

/** What a fake backend received. */
export type Received = { method: string; path: string; key: string | undefined; body: unknown };

/**
 * A local HTTP "CRM" that honours idempotency keys the way a real one would: a key seen
 * before gets the same answer, and no second customer. `hold()` makes it keep the next
 * request unanswered (as if the answer were still on its way), to crash its caller meanwhile.
 */
export async function startCrm() {
  const requests: Received[] = [];
  const byKey = new Map<string, { id: string }>();
  const held: ServerResponse[] = [];
  let holdNext = false;
  let created = 0;
  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const body = await readJson(req);
    const key = req.headers['idempotency-key'] as string | undefined;
    requests.push({ method: req.method!, path: req.url!, key, body });
    if (holdNext) {
      holdNext = false;
      held.push(res);
      return;
    }
    let customer = key ? byKey.get(key) : undefined;
    if (!customer) {
      customer = { id: `C-${++created}` };
      if (key) byKey.set(key, customer);
    }
    res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify(customer));
  });
  const url = await listen(server);
  return {
    url,
    requests,
    /** Customers made (a repeated key makes none). */
    created: () => created,
    hold: () => void (holdNext = true),
    async close() {
      for (const r of held) r.destroy();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

/** A webhook that takes what it is sent (emails, SMS) and answers 202. */
export async function startWebhook() {
  const received: Received[] = [];
  const server = createServer(async (req, res) => {
    received.push({ method: req.method!, path: req.url!, key: req.headers['idempotency-key'] as string | undefined, body: await readJson(req) });
    res.writeHead(202, { 'content-type': 'application/json' }).end('{"queued":true}');
  });
  const url = await listen(server);
  return {
    url: `${url}/mail`,
    received,
    async close() {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

/** A flows dir holding the reference flow (or `definition`), and a twins file with a twin that runs it. */
export function flowDeployment(definition?: unknown): { flowsDir: string; twinsFile: string; write(definition: unknown): void } {
  const dir = mkdtempSync(join(tmpdir(), 'gemello-flows-'));
  const flowsDir = join(dir, 'flows');
  mkdirSync(flowsDir);
  const write = (d: unknown) => writeFileSync(join(flowsDir, 'onboarding.flow.json'), JSON.stringify(d, null, 2));
  if (definition === undefined) copyFileSync(REFERENCE_FLOW, join(flowsDir, 'onboarding.flow.json'));
  else write(definition);
  const twinsFile = join(dir, 'twins.json');
  writeFileSync(twinsFile, JSON.stringify([{ id: 'onboarding-it', name: 'Registrazione', flow: 'onboarding' }]));
  return { flowsDir, twinsFile, write };
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  let text = '';
  for await (const chunk of req) text += chunk;
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return text;
  }
}

function listen(server: ReturnType<typeof createServer>): Promise<string> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as { port: number }).port}`)));
}
