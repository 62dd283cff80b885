// What the tests of actor hosts under faults share: a fake model for the file, the gemello
// processes a test starts (resumed if frozen, then SIGKILLed when it is over), and the start of
// one gateway with one actor host that owns every partition.
import { afterAll, afterEach, beforeAll } from 'vitest';
import { startFakeOpenAI } from './fake-openai.ts';
import type { FakeOpenAI } from './fake-openai.ts';
import { realEnv } from './env.ts';
import { fakeModelEnv, freePort, startGemello } from './processes.ts';
import type { Gemello } from './processes.ts';

export type HostFixture = {
  /** The file's fake model (up before the first test). */
  readonly fake: FakeOpenAI;
  /** Push every process a test starts: they are killed after it (`each`) or after the file (`all`). */
  procs: Gemello[];
};

/** A fake model for this file and the end of the processes its tests start; with `each` the model's mode and pace are reset after each test too. */
export function hostFixture(end: 'each' | 'all'): HostFixture {
  let fake: FakeOpenAI | undefined;
  const procs: Gemello[] = [];
  const killAll = async () => {
    const started = procs.splice(0);
    for (const p of started) p.child.kill('SIGCONT');
    await Promise.all(started.map((p) => p.kill('SIGKILL')));
  };
  beforeAll(async () => {
    fake = await startFakeOpenAI();
  });
  if (end === 'each') {
    afterEach(async () => {
      await killAll();
      fake?.setMode('ok');
      fake?.setTokenDelay(0);
      fake?.setLatency(0);
    });
  }
  afterAll(async () => {
    await killAll();
    await fake?.close();
  });
  return {
    get fake() {
      if (!fake) throw new Error('the fake model is started in beforeAll: use it inside a test');
      return fake;
    },
    procs,
  };
}

/**
 * A gateway (with the projections) and one actor host on the real services, in a namespace
 * named after `tag`, talking to the fixture's fake model; returns once the host owns every
 * partition. `extra` adds to the environment both get (the host's `env` is returned, to start
 * more hosts like it).
 */
export async function gatewayAndHost(t: HostFixture, tag: string, partitions: number, extra: Record<string, string> = {}) {
  const real = realEnv(tag);
  const env = { ...real.env, ...fakeModelEnv(t.fake), GEMELLO_PARTITIONS: String(partitions), GEMELLO_KAFKA_SESSION_TIMEOUT_MS: '6000', GEMELLO_RATE_PER_SEC: '1000', GEMELLO_RATE_BURST: '1000', ...extra };
  const port = await freePort();
  const gateway = await startGemello(['serve', '--roles', 'gateway,projections'], { ...env, PORT: String(port) });
  t.procs.push(gateway);
  const host = await startGemello(['actors'], env);
  t.procs.push(host);
  await host.waitFor(() => host.owned().length === partitions, 'the host to own every partition', 30_000);
  return { env, namespace: real.namespace, port, gateway, host };
}
