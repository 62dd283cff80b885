// The README's picture of the Grafana dashboard, drawn from a real run: a gateway with the
// projections and two actor hosts on the real Kafka, PostgreSQL and Redis (npm run infra:up),
// a fake OpenAI-compatible model with varying latency, 24 sockets sending prompts (and now and
// then a bad frame), one actor host SIGKILLed midway and started again. Every role's /metrics is
// scraped each second; the dashboard's own queries are evaluated over that (promql.ts) and drawn
// (render.ts); headless Chromium takes the screenshot.
//   node scripts/dashboard-preview/run.ts        → infra/grafana/gemello.png
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cleanUp } from '../../bench/cleanup.ts';
import { DATABASE_URL, KAFKA_BROKERS, REDIS_URL, realEnv } from '../../test/support/env.ts';
import { startFakeOpenAI } from '../../test/support/fake-openai.ts';
import { fakeModelEnv, freePort, startGemello } from '../../test/support/processes.ts';
import type { Gemello } from '../../test/support/processes.ts';
import { connect } from '../../test/support/ws-client.ts';
import { parseExposition } from './promql.ts';
import type { Series } from './promql.ts';
import { renderDashboard } from './render.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SECONDS = Number(process.env.PREVIEW_SECONDS ?? 150);
const KILL_AT = SECONDS * 0.4;
const RESTART_AT = SECONDS * 0.65;

const fake = await startFakeOpenAI({ latencyMs: 120 });
const real = realEnv('dash');
const env = { ...real.env, ...fakeModelEnv(fake), GEMELLO_PARTITIONS: '12', GEMELLO_KAFKA_SESSION_TIMEOUT_MS: '6000', GEMELLO_IDLE_SECONDS: '8', GEMELLO_LOG_QUIET: '1' };
const port = await freePort();
const opsA = await freePort();
const opsB = await freePort();
const procs: Record<string, { port: number; proc: Gemello | null }> = {
  'gateway-1': { port, proc: await startGemello(['serve', '--roles', 'gateway,projections'], { ...env, PORT: String(port) }) },
  'actors-a': { port: opsA, proc: await startGemello(['actors'], { ...env, GEMELLO_OPS_PORT: String(opsA) }) },
  'actors-b': { port: opsB, proc: await startGemello(['actors'], { ...env, GEMELLO_OPS_PORT: String(opsB) }) },
};

const series = new Map<string, Series>();
const times: number[] = [];
async function scrape(t: number) {
  times.push(t);
  await Promise.all(Object.entries(procs).map(async ([instance, { port: p, proc }]) => {
    if (!proc) return;
    const text = await fetch(`http://127.0.0.1:${p}/metrics`).then((r) => r.text(), () => '');
    for (const s of parseExposition(text)) {
      const labels = { ...s.labels, instance };
      const k = `${s.name}${JSON.stringify(Object.entries(labels).sort())}`;
      if (!series.has(k)) series.set(k, { name: s.name, labels, samples: [] });
      series.get(k)!.samples.push({ t, v: s.value });
    }
  }));
}

const seed = { digitalTwinId: 'warren-buffett-001', digitalTwinName: 'Warren Buffett' };
const start = Date.now();
const end = start + SECONDS * 1000;
let stop = false;
const clients = await Promise.all(Array.from({ length: 24 }, () => connect(`ws://127.0.0.1:${port}/ws`)));
const load = clients.map(async (c, i) => {
  let n = 0;
  while (!stop && Date.now() < end) {
    if (n % 17 === 16) c.send('{not json');
    c.send({ ...seed, prompt: `question ${n++} from socket ${i}` });
    await c.next((f) => f.type === 'reply' || (f.type === 'error' && f.code !== 'bad_json'), 30_000).catch(() => {});
    // Some sockets pause long enough for their conversation to leave memory (GEMELLO_IDLE_SECONDS).
    await new Promise((r) => setTimeout(r, i % 4 === 0 ? 9_000 + Math.random() * 3_000 : 200 + Math.random() * 600));
  }
});
try {
  for (let s = 0; Date.now() < end; s++) {
    fake.setLatency(80 + Math.round(60 * Math.sin(s / 9) + Math.random() * 120));
    // Neither the kill nor the restart may hold up the scrapes.
    if (s === Math.round(KILL_AT)) {
      const victim = procs['actors-b']!.proc!;
      procs['actors-b']!.proc = null;
      void victim.kill('SIGKILL');
    }
    if (s === Math.round(RESTART_AT)) void startGemello(['actors'], { ...env, GEMELLO_OPS_PORT: String(opsB) }).then((p) => (procs['actors-b']!.proc = p));
    await scrape(Date.now());
    await new Promise((r) => setTimeout(r, Math.max(0, start + (s + 1) * 1000 - Date.now())));
  }
} finally {
  stop = true;
  for (const c of clients) c.close();
  await Promise.race([Promise.all(load), new Promise((r) => setTimeout(r, 5_000))]);
  await Promise.all(Object.values(procs).map((p) => p.proc?.kill('SIGTERM')));
  await fake.close();
  await cleanUp({ brokers: KAFKA_BROKERS, namespace: real.namespace, redisUrl: REDIS_URL, databaseUrl: DATABASE_URL, schemas: [real.schema] });
}

const dashboard = JSON.parse(readFileSync(join(ROOT, 'infra', 'grafana', 'gemello.json'), 'utf8'));
// The first 30 s only fill the rate window.
const shown = times.filter((t) => t >= start + 30_000);
const note = `sample data: a ${SECONDS} s run on this machine (1 gateway, 2 actor hosts, actors-b SIGKILLed at ${Math.round(KILL_AT)} s and restarted at ${Math.round(RESTART_AT)} s); drawn from the dashboard's own queries, not by Grafana`;
const dir = mkdtempSync(join(tmpdir(), 'gemello-preview-'));
try {
  const page = join(dir, 'dashboard.html');
  writeFileSync(page, renderDashboard(dashboard, [...series.values()], shown, note));
  const out = join(ROOT, 'infra', 'grafana', 'gemello.png');
  const r = spawnSync('chromium', ['--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars', `--user-data-dir=${join(dir, 'profile')}`, '--window-size=1616,1370', `--screenshot=${out}`, `file://${page}`], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`chromium: ${r.stderr}`);
  console.log(`wrote ${out}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
process.exit(0);
