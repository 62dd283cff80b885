import { execFile, fork, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { DATABASE_URL, realEnv, REDIS_URL } from './env.ts';
import { TEST_MASTER_KEY_B64 } from './keys.ts';
import type { RealEnv } from './env.ts';
import { startFakeOpenAI } from './fake-openai.ts';
import type { FakeOpenAI } from './fake-openai.ts';

const CLI = fileURLToPath(new URL('../../cli/gemello.ts', import.meta.url));

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

export type Gemello = {
  child: ChildProcess;
  /** Everything the process wrote to stderr so far. */
  output(): string;
  /** The partitions the process's actor host owns, as it last reported. */
  owned(): number[];
  waitFor(predicate: () => boolean, what: string, ms?: number): Promise<void>;
  kill(signal?: NodeJS.Signals): Promise<void>;
};

export type CliResult = { code: number; stdout: string; stderr: string };

/** Runs `gemello <args>` (the real CLI) to its end, with `env` over this process's environment. */
export function runCli(args: string[], env: Record<string, string | undefined>, timeoutMs = 90_000): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, timeout: timeoutMs, maxBuffer: 256 * 2 ** 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** Whether any process of the group led by `pid` (a child spawned `detached`) is still running. */
export function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Waits at most `ms` for the group led by `pid` to be gone; whether it is. */
export async function groupGone(pid: number, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (groupAlive(pid) && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  return !groupAlive(pid);
}

/** Starts `gemello <args>` (the real CLI) as a child process and waits until it reports ready. */
export async function startGemello(args: string[], env: Record<string, string>, readyMs = 60_000): Promise<Gemello> {
  const child = fork(CLI, args, {
    // The tests' master key, so a test can open what the process sealed (unless `env` names another).
    env: { ...process.env, GEMELLO_LOG_QUIET: '0', GEMELLO_MASTER_KEY: TEST_MASTER_KEY_B64, ...env },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    // GEMELLO_CHILD_NODE_ARGS: extra node flags for the children, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof` to profile a benchmark.
    execArgv: process.env.GEMELLO_CHILD_NODE_ARGS?.split(' ').filter(Boolean) ?? [],
  });
  let out = '';
  let owned: number[] = [];
  let ready = false;
  let exited: number | null = null;
  child.stderr!.on('data', (d) => (out += d.toString()));
  child.stdout!.on('data', (d) => (out += d.toString()));
  child.on('message', (msg: { type: string; partitions?: number[] }) => {
    if (msg.type === 'ready') ready = true;
    if (msg.type === 'owned') owned = msg.partitions ?? [];
  });
  child.on('exit', (code) => (exited = code ?? -1));
  const g: Gemello = {
    child,
    output: () => out,
    owned: () => owned,
    async waitFor(predicate, what, ms = 30_000) {
      const end = Date.now() + ms;
      while (!predicate()) {
        if (exited !== null) throw new Error(`gemello ${args.join(' ')} exited (${exited}) while waiting for ${what}:\n${out.slice(-3000)}`);
        if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}:\n${out.slice(-3000)}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    async kill(signal = 'SIGTERM') {
      if (exited !== null) return;
      const done = new Promise((r) => child.once('exit', r));
      child.kill(signal);
      await Promise.race([done, new Promise((r) => setTimeout(r, 15_000))]);
      if (exited === null) child.kill('SIGKILL');
    },
  };
  await g.waitFor(() => ready, 'the process to be ready', readyMs);
  return g;
}

/** The model settings of a gemello process whose chat model is `fake` and which does not speak. */
export function fakeModelEnv(fake: FakeOpenAI): { OPENAI_API_KEY: string; OPENAI_BASE_URL: string; GEMELLO_SPEECH: string } {
  return { OPENAI_API_KEY: 'test-key', OPENAI_BASE_URL: fake.url, GEMELLO_SPEECH: 'off' };
}

/**
 * `gemello serve` for a broker-fault test: on the test's private brokers and the client named,
 * with a Kafka namespace and a Postgres schema of its own (`${tag}…`), the shared PostgreSQL and
 * Redis, a 6 s session, the fake model, and no rate limit (each client sends its next prompt as
 * soon as its reply comes: faster than a user, past the default limit).
 */
export function brokerFaultEnv(o: { port: number; brokers: string[]; client: string; namespace: string; tag: string; partitions: number; fake: FakeOpenAI }): Record<string, string> {
  return {
    PORT: String(o.port),
    KAFKA_BROKERS: o.brokers.join(','),
    GEMELLO_KAFKA_CLIENT: o.client,
    DATABASE_URL,
    DATABASE_SCHEMA: `${o.tag}_${Math.random().toString(36).slice(2, 10)}`,
    REDIS_URL,
    GEMELLO_NAMESPACE: o.namespace,
    GEMELLO_PARTITIONS: String(o.partitions),
    GEMELLO_KAFKA_SESSION_TIMEOUT_MS: '6000',
    GEMELLO_RATE_PER_SEC: '1000',
    GEMELLO_RATE_BURST: '1000',
    ...fakeModelEnv(o.fake),
  };
}

/**
 * Starts a fake OpenAI server and `gemello serve` on a free port, on the real services in a
 * fresh namespace and schema (`realEnv(tag)`), talking to the fake, speech off; `extra` adds
 * to the environment. The caller stops both.
 */
export async function startServeWithFakeModel(tag: string, extra: Record<string, string> = {}): Promise<RealEnv & { fake: FakeOpenAI; gemello: Gemello; port: number }> {
  const real = realEnv(tag);
  const fake = await startFakeOpenAI();
  try {
    const port = await freePort();
    const gemello = await startGemello(['serve'], { PORT: String(port), ...real.env, ...fakeModelEnv(fake), ...extra });
    return { ...real, fake, gemello, port };
  } catch (err) {
    await fake.close();
    throw err;
  }
}

/**
 * A two-host cluster on the real services in a fresh namespace and schema: a gateway with
 * the projections (`serve --roles gateway,projections`) on a free port, and two `actors`
 * processes in one consumer group, resolved once the group has settled (each host owns
 * some partitions, and together every partition once). Kafka's session timeout is 6 s so
 * that a killed host's partitions move quickly. The caller kills the three processes.
 */
export async function startTwoHostCluster(tag: string, partitions: number, env: Record<string, string>): Promise<RealEnv & { port: number; gateway: Gemello; a: Gemello; b: Gemello }> {
  const real = realEnv(tag);
  const all = { ...real.env, GEMELLO_PARTITIONS: String(partitions), GEMELLO_KAFKA_SESSION_TIMEOUT_MS: '6000', ...env };
  const port = await freePort();
  const started: Gemello[] = [];
  try {
    started.push(await startGemello(['serve', '--roles', 'gateway,projections'], { ...all, PORT: String(port) }));
    started.push(await startGemello(['actors'], all));
    started.push(await startGemello(['actors'], all));
    const [gateway, a, b] = started as [Gemello, Gemello, Gemello];
    const every = Array.from({ length: partitions }, (_, i) => i).join();
    await a.waitFor(() => a.owned().length > 0 && b.owned().length > 0 && [...a.owned(), ...b.owned()].sort((x, y) => x - y).join() === every, 'both hosts to share the partitions', 40_000);
    return { ...real, port, gateway, a, b };
  } catch (err) {
    await Promise.all(started.map((p) => p.kill('SIGKILL')));
    throw err;
  }
}

/** Starts any command (Deno, npm) and waits until its output says `ready`; the process group is killed at the end. */
export async function startCommand(command: string, args: string[], env: Record<string, string>, readyMs = 90_000): Promise<Gemello> {
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  let exited: number | null = null;
  child.stderr!.on('data', (d) => (out += d.toString()));
  child.stdout!.on('data', (d) => (out += d.toString()));
  child.on('exit', (code) => (exited = code ?? -1));
  const g: Gemello = {
    child,
    output: () => out,
    owned: () => [],
    async waitFor(predicate, what, ms = 30_000) {
      const end = Date.now() + ms;
      while (!predicate()) {
        if (exited !== null) throw new Error(`${command} ${args.join(' ')} exited (${exited}) while waiting for ${what}:\n${out.slice(-3000)}`);
        if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}:\n${out.slice(-3000)}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    async kill(signal = 'SIGTERM') {
      if (exited !== null) return;
      const done = new Promise((r) => child.once('exit', r));
      try {
        process.kill(-child.pid!, signal);
      } catch {
        child.kill(signal);
      }
      await Promise.race([done, new Promise((r) => setTimeout(r, 15_000))]);
      // npm exits before the node it started: wait for the whole process group to be gone.
      if (!(await groupGone(child.pid!, 15_000)) || exited === null) {
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          child.kill('SIGKILL');
        }
      }
    },
  };
  await g.waitFor(() => / ready\b/.test(out), `${command} to be ready`, readyMs);
  return g;
}
