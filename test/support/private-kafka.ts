// Kafka brokers a test starts for itself, to kill or stop them (never the shared broker
// other suites use): one node via infra/kafka.sh, or three via infra/kafka-cluster.sh, each
// with its own ports and a home under the system's temp dir. Settings that only make them
// start faster: the cluster id made here (no JVM to make one), 4 offsets partitions instead
// of 50, C1-only JIT and, for a single node, the cluster's broker session of 2.5 s (after a
// SIGKILL the controller refuses the restarted broker until the old registration's session
// has expired: 9 s by default).
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { freePort } from './processes.ts';

const KAFKA_SH = fileURLToPath(new URL('../../infra/kafka.sh', import.meta.url));
const CLUSTER_SH = fileURLToPath(new URL('../../infra/kafka-cluster.sh', import.meta.url));
const run = promisify(execFile);

const FAST_START = { KAFKA_EXTRA_PROPERTIES: 'offsets.topic.num.partitions=4', KAFKA_JVM_OPTS: '-XX:TieredStopAtLevel=1', KAFKA_WAIT_SECONDS: '90' };
/** A single node's broker session as the cluster's (infra/kafka/cluster.properties): 2.5 s, heartbeats every 0.5 s. */
const SHORT_SESSION = 'broker.session.timeout.ms=2500 broker.heartbeat.interval.ms=500';

/** Distinct free ports. */
async function ports(n: number): Promise<number[]> {
  const out: number[] = [];
  while (out.length < n) {
    const p = await freePort();
    if (!out.includes(p)) out.push(p);
  }
  return out;
}

/** SIGKILLs the broker whose pid file is in `home` and waits (≤ 10 s) until it is gone. */
async function killPidFile(home: string): Promise<void> {
  let pid: number;
  try {
    pid = Number(readFileSync(join(home, 'kafka.pid'), 'utf8'));
    process.kill(pid, 'SIGKILL');
  } catch {
    return; // not running
  }
  for (const end = Date.now() + 10_000; Date.now() < end; await new Promise((r) => setTimeout(r, 50))) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
  }
}

export type PrivateBroker = {
  /** `127.0.0.1:<port>` */
  broker: string;
  /** Starts it (again), resolving once it answers an admin request. */
  start(): Promise<void>;
  /** A clean stop (SIGTERM; the data is kept). */
  stop(): Promise<void>;
  /** SIGKILL. */
  kill(): Promise<void>;
  /** Kills it and removes its home. */
  remove(): Promise<void>;
};

/** A cluster id as Kafka makes them: 16 random bytes in base64url, never beginning with "-" (a command line would read it as an option). */
const clusterId = () => randomBytes(16).toString('base64url').replace(/^-/, 'A');

/** A single-node broker of the test's own (not started yet: call start()). */
export async function privateBroker(): Promise<PrivateBroker> {
  const home = mkdtempSync(join(tmpdir(), 'gemello-kafka-'));
  const [port, controller] = await ports(2);
  const env = { ...process.env, ...FAST_START, KAFKA_EXTRA_PROPERTIES: `${FAST_START.KAFKA_EXTRA_PROPERTIES} ${SHORT_SESSION}`, KAFKA_HOME_DIR: home, KAFKA_PORT: String(port), KAFKA_CONTROLLER_PORT: String(controller), KAFKA_CLUSTER_ID: clusterId() };
  const kafka = async (command: 'start' | 'stop') => {
    if (!home.startsWith(tmpdir()) || port === 9092) throw new Error('refusing to touch the shared broker');
    await run('bash', [KAFKA_SH, command], { env, timeout: 120_000 });
  };
  return {
    broker: `127.0.0.1:${port}`,
    start: () => kafka('start'),
    stop: () => kafka('stop'),
    kill: () => killPidFile(home),
    async remove() {
      await killPidFile(home);
      rmSync(home, { recursive: true, force: true });
    },
  };
}

export type PrivateCluster = {
  brokers: string[];
  start(): Promise<void>;
  /** SIGKILLs node 1, 2 or 3 (its broker is brokers[node - 1]). */
  kill(node: number): Promise<void>;
  remove(): Promise<void>;
};

/** Three KRaft nodes of the test's own (RF 3, min.insync.replicas 2), not started yet. */
export async function privateCluster(): Promise<PrivateCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'gemello-kafka-cluster-'));
  const p = await ports(6);
  const env = { ...process.env, ...FAST_START, KAFKA_CLUSTER_DIR: dir, KAFKA_CLUSTER_PORTS: p.join(' ') };
  return {
    brokers: p.slice(0, 3).map((x) => `127.0.0.1:${x}`),
    async start() {
      await run('bash', [CLUSTER_SH, 'start'], { env, timeout: 240_000 });
    },
    kill: (node) => killPidFile(join(dir, `node${node}`)),
    async remove() {
      // The data is thrown away: SIGKILL instead of a clean stop.
      await Promise.all([1, 2, 3].map((n) => killPidFile(join(dir, `node${n}`))));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
