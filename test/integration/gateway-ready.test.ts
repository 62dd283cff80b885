// What an orchestrator sees when Kafka goes away and comes back: /health stays 200 (the
// process lives), /ready turns 503 naming the log, then 200 again, and prompts work again.
// The broker is a private one this test starts and stops (its own ports and data dir via
// infra/kafka.sh), never the shared broker other suites use.
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeOpenAI } from '../support/fake-openai.ts';
import type { FakeOpenAI } from '../support/fake-openai.ts';
import { DATABASE_URL, REDIS_URL } from '../support/env.ts';
import { freePort, startGemello } from '../support/processes.ts';
import type { Gemello } from '../support/processes.ts';
import { connect } from '../support/ws-client.ts';

const KAFKA_SH = fileURLToPath(new URL('../../infra/kafka.sh', import.meta.url));
const home = mkdtempSync(join(tmpdir(), 'gemello-kafka-'));
let kafkaEnv: Record<string, string>;
let fake: FakeOpenAI;
let gemello: Gemello;
let http: string;
let ws: string;

/** infra/kafka.sh on the private broker only: its own home dir and ports, always. */
async function privateKafka(command: 'start' | 'stop' | 'status') {
  if (!kafkaEnv.KAFKA_HOME_DIR?.startsWith(tmpdir()) || kafkaEnv.KAFKA_PORT === '9092') throw new Error('refusing to touch the shared broker');
  return promisify(execFile)('bash', [KAFKA_SH, command], { env: { ...process.env, ...kafkaEnv }, timeout: 120_000 });
}

beforeAll(async () => {
  const [port, controller] = [await freePort(), await freePort()];
  kafkaEnv = { KAFKA_HOME_DIR: home, KAFKA_PORT: String(port), KAFKA_CONTROLLER_PORT: String(controller), KAFKA_WAIT_SECONDS: '60' };
  fake = await startFakeOpenAI();
  await privateKafka('start');
  const gw = await freePort();
  http = `http://127.0.0.1:${gw}`;
  ws = `ws://127.0.0.1:${gw}/ws`;
  gemello = await startGemello(['serve'], {
    PORT: String(gw),
    KAFKA_BROKERS: `127.0.0.1:${port}`,
    DATABASE_URL,
    DATABASE_SCHEMA: `gr_${randomUUID().slice(0, 8)}`,
    REDIS_URL,
    GEMELLO_NAMESPACE: `gr${randomUUID().slice(0, 8)}.`,
    GEMELLO_PARTITIONS: '4',
    GEMELLO_KAFKA_SESSION_TIMEOUT_MS: '6000',
    OPENAI_API_KEY: 'test-key',
    OPENAI_BASE_URL: fake.url,
    GEMELLO_SPEECH: 'off',
  });
}, 150_000);

afterAll(async () => {
  await gemello?.kill();
  await fake?.close();
  if (kafkaEnv) await privateKafka('stop').catch(() => {});
  rmSync(home, { recursive: true, force: true });
}, 60_000);

type Ready = { status: number; body: { status: string; backends: Record<string, string> } };
const ready = async (): Promise<Ready> => {
  const res = await fetch(`${http}/ready`);
  return { status: res.status, body: (await res.json()) as Ready['body'] };
};

describe('/health and /ready across a Kafka outage', () => {
  it('/ready is 503 naming the log while Kafka is down and 200 once it is back; /health is 200 throughout', async () => {
    // /health is polled the whole time in the background.
    const health: number[] = [];
    let polling = true;
    const poller = (async () => {
      while (polling) {
        health.push(await fetch(`${http}/health`).then((r) => r.status, () => 0));
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const until = async (ok: (r: Ready) => boolean, ms: number, what: string) => {
      let last: Ready | null = null;
      for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 250))) if (ok((last = await ready()))) return last;
      throw new Error(`timed out waiting for ${what}; last /ready: ${JSON.stringify(last)}`);
    };

    const t0 = Date.now();
    const marks: string[] = [];
    const mark = (what: string) => marks.push(`${what} ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    try {
      expect(await ready()).toEqual({ status: 200, body: { status: 'ready', backends: { log: 'ok', readModel: 'ok', snapshots: 'ok', feed: 'ok' } } });

      await privateKafka('stop');
      mark('stopped');
      const down = await until((r) => r.status === 503, 20_000, '/ready to turn 503');
      expect(down.body.status).toBe('unavailable');
      expect(down.body.backends.log).not.toBe('ok');
      expect(down.body.backends).toMatchObject({ readModel: 'ok', snapshots: 'ok' });

      mark('503');
      await privateKafka('start');
      mark('started');
      await until((r) => r.status === 200, 45_000, '/ready to turn 200 again');
      mark('200');
      expect(gemello.child.exitCode).toBeNull();
    } finally {
      polling = false;
      await poller;
    }
    expect(health.length).toBeGreaterThan(10);
    expect(health.filter((s) => s !== 200)).toEqual([]);

    // And the whole path works again.
    const c = await connect(ws);
    c.send({ digitalTwinId: 'warren-buffett-001', prompt: 'are you back?' });
    expect(await c.next((f) => f.type === 'reply', 45_000)).toMatchObject({ reply: 'echo: are you back?' });
    c.close();
    mark('replied');
    console.log(`kafka outage: ${marks.join(', ')}`);
  }, 150_000);
});
