import { relative } from 'node:path';
import { cwd } from 'node:process';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { parseApiKeys } from '../gateway/auth.ts';
import type { AuthConfig } from '../gateway/auth.ts';
import { DEFAULT_KAFKA_CLIENT } from '../log/kafka-client.ts';
import { masterKeyProblem } from '../sealing/master-key.ts';
import { decimal, flag, int, isOn, positive, url } from './env-values.ts';
import { MODEL_ENV, modelSettingsFrom } from '../models/settings.ts';
import type { ModelSettings } from '../models/settings.ts';
import type { KafkaClient } from '../log/kafka-client.ts';

/** The checkout's `.gemello`: `npm start` runs at the checkout's root, `npx gemello` wherever it is typed, and both find the same one. */
const CHECKOUT_DATA_DIR = fileURLToPath(new URL('../.gemello', import.meta.url));

/** The longest DATABASE_SCHEMA a rebuild can put its `<schema>_old_<UTC time>` beside (PostgreSQL names are 63 bytes at most). */
export const MAX_SCHEMA_CHARS = 43;

const EnvSchema = z.object({
  PORT: int(3000, 0, 65535),
  HOST: z.string().default('127.0.0.1'),
  GEMELLO_PARTITIONS: int(12, 1),
  GEMELLO_DATA_DIR: z.string().optional(),
  GEMELLO_NAMESPACE: z.string().regex(/^[a-zA-Z0-9._-]*$/, 'letters, digits, dot, dash and underscore only').default(''),
  KAFKA_BROKERS: z.string().refine((v) => v.split(',').some((b) => b.trim()), 'at least one broker, host:port (comma-separated)').optional(),
  DATABASE_URL: url(['postgres', 'postgresql']).optional(),
  DATABASE_SCHEMA: z.string().regex(/^[a-z_][a-z0-9_]*$/, 'lower-case letters, digits and _, starting with a letter or _').max(MAX_SCHEMA_CHARS, `at most ${MAX_SCHEMA_CHARS} characters (a rebuild puts <schema>_old_<UTC time> beside it)`).optional(),
  REDIS_URL: url(['redis', 'rediss']).optional(),
  GEMELLO_SNAPSHOT_EVERY: int(20, 1),
  GEMELLO_HISTORY_MESSAGES: int(40, 1),
  GEMELLO_SNAPSHOT_TTL_SECONDS: int(0, 0),
  GEMELLO_IDLE_SECONDS: int(60, 1),
  GEMELLO_MAX_ACTORS: int(10_000, 10),
  GEMELLO_TAIL_MAX_EVENTS: int(10_000, 100),
  GEMELLO_TWINS_FILE: z.string().optional(),
  GEMELLO_API_KEYS: z.string().optional(),
  GEMELLO_JWT_SECRET: z.string().optional(),
  GEMELLO_WS_IDLE_SECONDS: int(600, 1),
  GEMELLO_RATE_PER_SEC: int(20, 1),
  GEMELLO_RATE_BURST: int(40, 1),
  GEMELLO_LOG_QUIET: flag,
  GEMELLO_KAFKA_SESSION_TIMEOUT_MS: int(10_000, 1_000),
  GEMELLO_LEASE_MS: int(400, 0),
  GEMELLO_PROJECTIONS_NICE: int(10, 0, 19),
  GEMELLO_KAFKA_CLIENT: z.enum(['kafkajs', 'platformatic']).default(DEFAULT_KAFKA_CLIENT),
  GEMELLO_FLOWS_DIR: z.string().optional(),
  GEMELLO_BACKENDS: z.string().optional(),
  GEMELLO_EMAIL_WEBHOOK: z.url().optional(),
  GEMELLO_SMS_WEBHOOK: z.url().optional(),
  GEMELLO_NO_INPUT_SECONDS: positive(30),
  GEMELLO_OPS_PORT: decimal(true).pipe(z.number().int().min(0).max(65535)).optional(),
  GEMELLO_MASTER_KEY: z.string().optional(),
  GEMELLO_VOICE_MAX_SECONDS: positive(60),
  GEMELLO_VOICE_MAX_BYTES: int(8 * 1024 * 1024, 1024),
  GEMELLO_KEEP_VOICE: flag,
  GEMELLO_RETENTION_DAYS: decimal(false).pipe(z.number().min(0)).default(90),
  GEMELLO_PROJECTION_COPY_ROWS: int(200, 0),
  // The model, speech and speech-to-text settings: their owner is models/settings.ts.
  ...MODEL_ENV,
});

/** `GEMELLO_BACKENDS="crm=http://…,erp=http://…"`: the backends flows may call, by name (flows hold names, never URLs or secrets). */
export function parseBackends(spec: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (spec ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
    const eq = part.indexOf('=');
    const name = part.slice(0, eq).trim();
    const url = part.slice(eq + 1).trim();
    if (eq < 1 || !/^[A-Za-z0-9_-]+$/.test(name) || !URL.canParse(url) || !/^https?:$/.test(new URL(url).protocol)) {
      throw new ConfigError(`GEMELLO_BACKENDS: "${part}" is not name=http(s)://url (e.g. crm=http://127.0.0.1:8080)`);
    }
    out[name] = url.replace(/\/+$/, '');
  }
  return out;
}

/** What flows may use in this deployment (DESIGN §8). */
export type FlowsConfig = {
  dir: string | null;
  backends: Record<string, string>;
  emailWebhook: string | null;
  smsWebhook: string | null;
  /** Seconds of silence before a data node's noInput prompt, where the flow does not say. */
  noInputSec: number;
};

export type Config = {
  port: number;
  host: string;
  partitions: number;
  dataDir: string;
  namespace: string;
  kafkaBrokers: string[] | null;
  databaseUrl: string | null;
  databaseSchema: string | null;
  redisUrl: string | null;
  snapshotEvery: number;
  /** The most recent messages of a conversation the model is shown with each prompt. */
  historyMessages: number;
  snapshotTtlMs: number;
  idleMs: number;
  /** Conversations an actor host holds in memory at most. */
  maxActors: number;
  /** Events a partition's tail holds at most. */
  tailMaxEvents: number;
  twinsFile: string | null;
  auth: AuthConfig | null;
  wsIdleMs: number;
  rate: { perSec: number; burst: number };
  quiet: boolean;
  kafkaSessionTimeoutMs: number;
  /** The Kafka client library the event log runs on (GEMELLO_KAFKA_CLIENT). */
  kafkaClient: KafkaClient;
  flows: FlowsConfig;
  /** Where a process without the gateway role answers /health, /ready and /metrics (null: nowhere). */
  opsPort: number | null;
  /** An actor host's liveness lease in Redis (0: none, the Kafka session timeout alone decides a takeover). */
  leaseMs: number;
  /**
   * The nice value a process running only the projections role gives itself (0: left as it
   * is): where the roles share a machine's CPUs, the prompt path goes first.
   */
  projectionsNice: number;
  /** GEMELLO_MASTER_KEY (or GEMELLO_MASTER_KEY_FILE, read by the entry file): the key that wraps the data keys; null: the data directory's. */
  masterKey: string | null;
  /** Speech in: the longest and largest utterance taken, and whether the caller's audio is kept (sealed); off by default. */
  voice: { maxSeconds: number; maxBytes: number; keep: boolean };
  /** Conversations with no event for this many days are erased (0: kept for ever). */
  retentionDays: number;
  /** The projector writes a transaction's events or messages by COPY from this many on (PostgreSQL; 0: never). */
  projectionCopyRows: number;
  /** The model, speech and speech-to-text settings (models/settings.ts). */
  models: ModelSettings;
  /** The raw environment, for the telemetry selection. */
  env: Record<string, string | undefined>;
};

/** Thrown for a setting that cannot be used; the message names it and says what is expected. */
export class ConfigError extends Error {
  readonly code = 'bad_config';
}

/** Reads the settings of DESIGN §2 from an environment. */
export function loadConfig(env: Record<string, string | undefined>): Config {
  const clean = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = EnvSchema.safeParse(clean);
  // Every variable that is wrong, not only the first: one start tells them all, the lists and the key among them.
  const problems = parsed.success ? [] : parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
  const checked = <T>(name: string, read: () => T): T | undefined => {
    try {
      return read();
    } catch (err) {
      problems.push(`${name}: ${(err as Error).message.replace(`${name}: `, '')}`);
      return undefined;
    }
  };
  const apiKeys = checked('GEMELLO_API_KEYS', () => parseApiKeys(clean.GEMELLO_API_KEYS));
  const backends = checked('GEMELLO_BACKENDS', () => parseBackends(clean.GEMELLO_BACKENDS));
  const keyProblem = clean.GEMELLO_MASTER_KEY ? masterKeyProblem(clean.GEMELLO_MASTER_KEY) : null;
  if (keyProblem) problems.push(`GEMELLO_MASTER_KEY: ${keyProblem.replace(/^it /, '')}`);
  if (!parsed.success || problems.length) throw new ConfigError(problems.join('; '));
  const e = parsed.data;
  return {
    port: e.PORT,
    host: e.HOST,
    partitions: e.GEMELLO_PARTITIONS,
    dataDir: e.GEMELLO_DATA_DIR ?? (relative(cwd(), CHECKOUT_DATA_DIR) || '.gemello'),
    namespace: e.GEMELLO_NAMESPACE,
    kafkaBrokers: e.KAFKA_BROKERS ? e.KAFKA_BROKERS.split(',').map((s) => s.trim()).filter(Boolean) : null,
    databaseUrl: e.DATABASE_URL ?? null,
    databaseSchema: e.DATABASE_SCHEMA ?? null,
    redisUrl: e.REDIS_URL ?? null,
    snapshotEvery: e.GEMELLO_SNAPSHOT_EVERY,
    historyMessages: e.GEMELLO_HISTORY_MESSAGES,
    snapshotTtlMs: e.GEMELLO_SNAPSHOT_TTL_SECONDS * 1000,
    idleMs: e.GEMELLO_IDLE_SECONDS * 1000,
    maxActors: e.GEMELLO_MAX_ACTORS,
    tailMaxEvents: e.GEMELLO_TAIL_MAX_EVENTS,
    twinsFile: e.GEMELLO_TWINS_FILE ?? null,
    auth: apiKeys!.size || e.GEMELLO_JWT_SECRET ? { apiKeys: apiKeys!, jwtSecret: e.GEMELLO_JWT_SECRET ?? null } : null,
    wsIdleMs: e.GEMELLO_WS_IDLE_SECONDS * 1000,
    rate: { perSec: e.GEMELLO_RATE_PER_SEC, burst: e.GEMELLO_RATE_BURST },
    quiet: isOn(e.GEMELLO_LOG_QUIET),
    kafkaSessionTimeoutMs: e.GEMELLO_KAFKA_SESSION_TIMEOUT_MS,
    kafkaClient: e.GEMELLO_KAFKA_CLIENT,
    flows: {
      dir: e.GEMELLO_FLOWS_DIR ?? null,
      backends: backends!,
      emailWebhook: e.GEMELLO_EMAIL_WEBHOOK ?? null,
      smsWebhook: e.GEMELLO_SMS_WEBHOOK ?? null,
      noInputSec: e.GEMELLO_NO_INPUT_SECONDS,
    },
    opsPort: e.GEMELLO_OPS_PORT ?? null,
    leaseMs: e.GEMELLO_LEASE_MS,
    projectionsNice: e.GEMELLO_PROJECTIONS_NICE,
    masterKey: e.GEMELLO_MASTER_KEY ?? null,
    voice: { maxSeconds: e.GEMELLO_VOICE_MAX_SECONDS, maxBytes: e.GEMELLO_VOICE_MAX_BYTES, keep: isOn(e.GEMELLO_KEEP_VOICE) },
    retentionDays: e.GEMELLO_RETENTION_DAYS,
    projectionCopyRows: e.GEMELLO_PROJECTION_COPY_ROWS,
    models: modelSettingsFrom(e, clean),
    env,
  };
}

/** A topic's name as the broker has it: the namespace's prefix on Kafka (GEMELLO_NAMESPACE); the file log's own name embedded. */
export const topicOnBroker = (config: Pick<Config, 'kafkaBrokers' | 'namespace'>, topic: string): string => `${config.kafkaBrokers ? config.namespace : ''}${topic}`;
