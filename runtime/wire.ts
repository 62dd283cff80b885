import { join } from 'node:path';
import { createActorHost } from '../actors/host.ts';
import type { ActorHost } from '../actors/host.ts';
import type { ReplyStreams, SnapshotStore } from '../actors/ports.ts';
import type { TwinCatalog } from '../actors/twins.ts';
import { createCommandClient } from '../actors/command-client.ts';
import { createEraser } from '../gateway/erase.ts';
import { createRetention } from '../gateway/retention.ts';
import type { Retention } from '../gateway/retention.ts';
import { createVoiceClips } from '../stores/voice-clips.ts';
import { createFeed, feedNotices } from '../gateway/feed.ts';
import type { Feed } from '../gateway/feed.ts';
import { DEFAULT_LIMITS } from '../gateway/session.ts';
import type { AppDeps } from '../gateway/app.ts';
import { createFileLog } from '../log/file.ts';
import { withConsumerLag } from '../log/consumer-lag.ts';
import { createKafkaEventLog } from '../log/kafka-client.ts';
import type { EventLog } from '../log/port.ts';
import { TOPICS, UnknownTopic } from '../log/port.ts';
import { selectReplyModel, selectSpeechModel } from '../models/select.ts';
import { selectSpeechToText, STT_HOW_TO } from '../models/select-stt.ts';
import { createAudioCache } from '../stores/audio-cache.ts';
import { createPGliteDb } from '../stores/db-pglite.ts';
import { createPostgresDb } from '../stores/db-postgres.ts';
import { createRedisLiveness } from '../stores/liveness/redis.ts';
import { createLoggedKeyStore } from '../sealing/key-store.ts';
import type { LoggedKeyStore } from '../sealing/key-store.ts';
import { loadMasterKey } from '../sealing/master-key.ts';
import { lockDataDir } from './data-dir-lock.ts';
import { migrate } from '../projections/migrate.ts';
import { createProjector } from '../projections/projector.ts';
import { createVoiceProjection } from '../projections/voice.ts';
import { createReadApi } from '../projections/queries.ts';
import type { Db } from '../stores/sql.ts';
import { createReadModelStateSource } from '../projections/state-source.ts';
import { createMemorySnapshotStore } from '../stores/snapshots/memory.ts';
import { createRedisSnapshotStore } from '../stores/snapshots/redis.ts';
import { createMemoryReplyStreams } from '../stores/streams/memory.ts';
import { createRedisReplyStreams } from '../stores/streams/redis.ts';
import { createLogger } from '../telemetry/logger.ts';
import { explainUnreachable, remoteBackends } from './unreachable.ts';
import { loadTwinCatalog } from './twins-file.ts';
import type { Logger } from '../telemetry/logger.ts';
import { createMetrics } from '../telemetry/metrics.ts';
import { tracerFor } from '../telemetry/trace.ts';
import type { Metrics } from '../telemetry/metrics.ts';
import { topicOnBroker } from './config.ts';
import type { Config } from './config.ts';
import { createFlowEffects } from '../actors/flow-effects.ts';
import { flowEnvironment, FlowsInvalid, loadFlows } from './flows.ts';
import { createFlowRegistry } from '../flows/registry.ts';
import { claimReadModel } from '../projections/log-identity.ts';
import { logIdentity, type LogIdentity } from './log-identity.ts';
import { within } from './deadline.ts';
import { eventsRetentionFix, eventsRetentionProblem } from '../log/retention.ts';

export type Role = 'gateway' | 'actors' | 'projections';
export const ALL_ROLES: Role[] = ['gateway', 'actors', 'projections'];

/** The backends every role shares, opened once per process. */
export type Backends = {
  log: EventLog;
  db: Db;
  snapshots: SnapshotStore;
  /** Live reply text between actor hosts and gateways (Redis pub/sub, or in process). */
  streams: ReplyStreams;
  catalog: TwinCatalog;
  /** The conversations' data keys (home: the keys topic; cached in the read model and in memory). */
  keys: LoggedKeyStore;
  metrics: Metrics;
  logger: Logger;
  describe: Record<string, string>;
  /** The event log this process reads and writes; the read models and Redis keys it uses are that log's. */
  identity: LogIdentity;
  close(): Promise<void>;
};

/** Opens the event log, read-model database and snapshot store the configuration names. */
export async function openBackends(config: Config, logger = createLogger('gemello', config.quiet), what = 'gemello', options: { lookOnly?: boolean } = {}): Promise<Backends> {
  // Before anything is opened or locked: a twins file that cannot be used is a configuration error.
  const catalog = loadTwinCatalog(config.twinsFile);
  // The embedded log and PGlite live in the data directory and cannot be shared: one process holds it.
  const lock = !config.kafkaBrokers || !config.databaseUrl ? lockDataDir(config.dataDir, what) : null;
  const metrics = createMetrics();
  // Every consumer's lag in /metrics (gemello_log_consumer_lag_records).
  const log = withConsumerLag(config.kafkaBrokers
    ? await createKafkaEventLog(config.kafkaClient, { brokers: config.kafkaBrokers, partitions: config.partitions, namespace: config.namespace, sessionTimeoutMs: config.kafkaSessionTimeoutMs })
    : createFileLog({ dir: join(config.dataDir, 'log'), partitions: config.partitions }), metrics, (name) => topicOnBroker(config, name));
  const db = config.databaseUrl
    ? createPostgresDb({ url: config.databaseUrl, schema: config.databaseSchema ?? undefined, createSchema: options.lookOnly ? () => unwrittenLog(log) : true })
    : await createPGliteDb({ dir: join(config.dataDir, 'readmodel') });
  const identity = logIdentity(config);
  const redisPrefix = redisPrefixOf(config.namespace, identity);
  const snapshots = config.redisUrl
    ? createRedisSnapshotStore({ url: config.redisUrl, prefix: redisPrefix, ttlMs: config.snapshotTtlMs })
    : createMemorySnapshotStore();
  const streams = config.redisUrl ? createRedisReplyStreams({ url: config.redisUrl, prefix: redisPrefix }) : createMemoryReplyStreams();
  const master = loadMasterKey({ value: config.masterKey, dataDir: config.dataDir, make: !options.lookOnly });
  if (master.created) logger.warn(`made a new master key in ${master.source.replace(/^file /, '').replace(/ \(made now\)$/, '')}: it wraps every data key, so back it up with Kafka (or set GEMELLO_MASTER_KEY; every process of a deployment needs the same one)`);
  const keys = createLoggedKeyStore({ log, db, master });
  const describe = {
    'event log': config.kafkaBrokers ? `Kafka (${config.kafkaClient}) at ${config.kafkaBrokers.join(',')}${config.namespace ? ` (namespace ${config.namespace})` : ''}, ${config.partitions} partitions` : `files under ${join(config.dataDir, 'log')} (embedded), ${config.partitions} partitions`,
    'read models': config.databaseUrl ? `PostgreSQL at ${redact(config.databaseUrl)}${config.databaseSchema ? ` schema ${config.databaseSchema}` : ''}` : `PGlite under ${join(config.dataDir, 'readmodel')} (embedded)`,
    snapshots: config.redisUrl ? `Redis at ${redact(config.redisUrl)}` : 'in-process cache (embedded)',
    'data keys': `topic ${topicOnBroker(config, TOPICS.keys)}, wrapped by master key ${master.id} from ${master.source.replace(/ \(made now\)$/, '')}`,
  };
  return {
    log,
    db,
    snapshots,
    streams,
    catalog,
    keys,
    metrics,
    logger,
    describe,
    identity,
    async close() {
      await log.close().catch(() => {});
      await snapshots.close().catch(() => {});
      await streams.close().catch(() => {});
      await db.close().catch(() => {});
      lock?.release();
    },
  };
}

/**
 * Redis keys are the namespace's; an embedded log's also carry its id, so two data directories
 * sharing one REDIS_URL do not read each other's snapshots and takeover checkpoints.
 */
const redisPrefixOf = (namespace: string, identity: LogIdentity) =>
  identity.id.startsWith('file:') ? `${namespace}gemello:${identity.id.slice(5, 13)}:` : `${namespace}gemello:`;

const redact = (url: string) => url.replace(/\/\/([^:@/]+):([^@/]+)@/, '//$1:***@');

export type Runtime = {
  backends: Backends;
  host: ActorHost | null;
  feed: Feed | null;
  appDeps: AppDeps | null;
  /** The retention job (with the gateway role; it sweeps only with GEMELLO_RETENTION_DAYS > 0). */
  retention: Retention | null;
  /** Each backend's health: null when it answers, else why not. */
  checks(): Promise<Record<string, string | null>>;
  start(): Promise<void>;
  stop(): Promise<void>;
};

/** The log's append queue, the data-key cache and the gateway's feed listeners in /metrics (the actor host, the projector and the consumers' lag report their own). */
function reportQueues(metrics: Metrics, log: EventLog, feed: Feed | null, keys: LoggedKeyStore): void {
  const appends = metrics.gauge('gemello_log_append_queue_bytes', 'Bytes of appends waiting for the log (bound: 64 MB, then appends are refused with log_busy)');
  const listeners = metrics.gauge('gemello_feed_conversations_followed', 'Conversations the gateway\'s sockets follow (bound: 100 per socket)');
  const keyCache = metrics.gauge('gemello_key_cache_entries', 'Conversations\' data keys held in memory (bound: 50,000, then the oldest is dropped)');
  metrics.onCollect(() => {
    appends.set(log.pendingAppends?.().bytes ?? 0);
    if (feed) listeners.set(feed.size());
    keyCache.set(keys.cached().entries);
  });
}

/** Builds the roles asked for on shared backends; `start` migrates, then starts each role. */
export async function createRuntime(config: Config, roles: Role[] = ALL_ROLES, logger?: Logger, clock: { now?: () => Date } = {}, what = `gemello ${roles.join('+')}`): Promise<Runtime> {
  // The actor host runs the flows: they compile at its start, before anything is opened, and a
  // bad one, or a twin naming a flow that is not there, stops the start.
  const flowRegistry = roles.includes('actors') ? loadFlows(config.flows) : createFlowRegistry([], flowEnvironment(config.flows));
  const backends = await openBackends(config, logger, what);
  const { log, db, snapshots, streams, catalog, metrics, keys } = backends;
  const log_ = backends.logger;
  const reply = selectReplyModel(config.models, (message) => log_.warn(message));
  const speech = selectSpeechModel(config.models);
  const stt = roles.includes('gateway') ? selectSpeechToText(config.models) : null;
  const readApi = createReadApi(db);
  const stateSource = createReadModelStateSource(db, undefined, config.historyMessages);
  const missing = roles.includes('actors') ? catalog.list().filter((t) => t.flow && !flowRegistry.current(t.flow)) : [];
  if (missing.length) throw new FlowsInvalid(missing.map((t) => `twin ${t.id} names flow "${t.flow}", which is not in GEMELLO_FLOWS_DIR (${config.flows.dir ?? 'unset'})`).join('\n'));

  // Leases need a store every host sees (Redis) and a log that can remove a member (Kafka).
  const liveness = roles.includes('actors') && config.leaseMs > 0 && config.redisUrl && config.kafkaBrokers
    ? createRedisLiveness({ url: config.redisUrl, key: `${config.namespace}gemello:liveness:gemello-actors` })
    : null;
  const host = roles.includes('actors')
    ? createActorHost({
        liveness: liveness ? { store: liveness, ttlMs: config.leaseMs, everyMs: Math.max(25, Math.floor(config.leaseMs / 8)) } : null,
        log,
        snapshots,
        readModel: stateSource,
        catalog,
        replyModel: reply.model,
        speech: speech ? { model: speech.model, sink: createAudioCache(db) } : null,
        speakSentences: config.models.speakSentences,
        keys,
        streams,
        metrics,
        logger: createLogger('actors', config.quiet),
        snapshotEvery: config.snapshotEvery,
        historyMessages: config.historyMessages,
        idleMs: config.idleMs,
        flows: {
          registry: flowRegistry,
          effects: createFlowEffects({ backends: config.flows.backends, emailWebhook: config.flows.emailWebhook, smsWebhook: config.flows.smsWebhook }),
          noInputSec: config.flows.noInputSec,
          model: reply.model.name !== 'offline',
        },
        maxActors: config.maxActors,
        tailMaxEvents: config.tailMaxEvents,
      })
    : null;
  const projector = roles.includes('projections') ? createProjector({ log, db, keys, metrics, logger: createLogger('projections', config.quiet), copyRows: config.projectionCopyRows, topicName: topicOnBroker(config, TOPICS.events) }) : null;
  // voice_clips from gemello.voice, where the caller's audio is kept (GEMELLO_KEEP_VOICE, set for every
  // role): off, nothing follows or makes the topic, and a projection started later fills the table from its checkpoints.
  const voiceProjection = roles.includes('projections') && config.voice.keep ? createVoiceProjection({ log, db, keys, logger: createLogger('projections', config.quiet), topicName: topicOnBroker(config, TOPICS.voice) }) : null;
  const feed = roles.includes('gateway') ? createFeed(log, createLogger('gateway', config.quiet), undefined, keys, streams) : null;
  reportQueues(metrics, log, feed, keys);
  let feedStarted = false;
  // One way for commands to reach the log, for the sockets and the eraser; answers come through the feed.
  const commands = feed ? createCommandClient({ log, keys, notices: feedNotices(feed), tracer: tracerFor('gemello-gateway') }) : null;

  /** Each backend's health (null: it answers), and the gateway's feed once it runs: /ready of every role. */
  const checks = async (): Promise<Record<string, string | null>> => {
    const check = async (f: () => Promise<unknown>) => {
      try {
        await within(f(), 2000);
        return null;
      } catch (err) {
        return (err as Error).message || String(err);
      }
    };
    const [l, d, s] = await Promise.all([check(() => log.ping()), check(() => db.ping()), check(() => snapshots.ping())]);
    return { log: l, readModel: d, snapshots: s, ...(feed ? { feed: feedStarted ? null : 'not started' } : {}) };
  };

  const voiceClips = config.voice.keep ? createVoiceClips(db, keys, log) : null;
  const appDeps: AppDeps | null = feed
    ? {
        log,
        feed,
        catalog,
        readApi,
        metrics,
        logger: createLogger('gateway', config.quiet),
        auth: config.auth,
        idleTimeoutMs: config.wsIdleMs,
        limits: { ...DEFAULT_LIMITS, ratePerSec: config.rate.perSec, burst: config.rate.burst },
        eventsAfter: (id, after) => readApi.getEvents(id, after),
        commands: commands!,
        erase: createEraser({
          commands: commands!,
          readModelErased: async (id) => {
            const [c] = await db.query<{ erased_at: unknown }>('SELECT erased_at FROM conversations WHERE id = $1', [id]);
            return Boolean(c?.erased_at);
          },
        }),
        // Owner, twin and last seq only: the state or the API view would load the whole transcript.
        conversationOf: async (id) => {
          const [c] = await db.query<{ user_id: string | null; twin_id: string | null; twin_name: string | null; last_seq: number }>('SELECT user_id, twin_id, twin_name, last_seq FROM conversations WHERE id = $1', [id]);
          return c ? { owner: c.user_id, twin: c.twin_id && c.twin_name ? { id: c.twin_id, name: c.twin_name } : null, lastSeq: Number(c.last_seq) } : null;
        },
        projectedUntil: (partition) => stateSource.coveredUntil(partition),
        checks,
        voice: { stt: stt?.model ?? null, limits: { maxSeconds: config.voice.maxSeconds, maxBytes: config.voice.maxBytes }, keep: voiceClips, unavailable: STT_HOW_TO },
        voiceClips,
      }
    : null;

  const retention = commands ? createRetention({ days: config.retentionDays, db, commands, metrics, logger: createLogger('retention', config.quiet), now: clock.now }) : null;

  /** Stops what started, in the order that hands the work over first. */
  const stop = async () => {
    retention?.stop();
    await feed?.stop().catch(() => {});
    await host?.stop().catch((err) => log_.warn(`stopping actors: ${(err as Error).message}`));
    await projector?.stop().catch(() => {});
    await voiceProjection?.stop().catch(() => {});
    await liveness?.close();
    await backends.close();
  };

  /** Migrates, then starts each role. */
  const start = async () => {
    log_.info(`roles: ${roles.join(', ')}`);
    for (const [role, what] of Object.entries({ ...backends.describe, model: reply.description, speech: speech?.description ?? 'off (GEMELLO_SPEECH=off)', ...(roles.includes('gateway') ? voiceLines(config, stt?.description ?? null) : {}) })) log_.info(`${role}: ${what}`);
    const flowList = flowRegistry.list();
    if (flowList.length) log_.info(`flows: ${flowList.map((f) => `${f.id}@${f.version}`).join(', ')}; backends: ${Object.keys(config.flows.backends).join(', ') || 'none'}`);
    await migrate(db);
    await claimReadModel(db, backends.identity, backends.describe['read models']!);
    await log.ensureTopics([TOPICS.commands, TOPICS.events]);
    const topicName = topicOnBroker(config, TOPICS.events);
    const keptTooShort = await eventsRetentionProblem(log, topicName).catch(() => null);
    if (keptTooShort) log_.warn(`${keptTooShort}; fix: ${eventsRetentionFix(topicName)}`);
    // The key cache is filled from the log before anything seals or opens content.
    await keys.sync();
    await keys.migrateLegacy((n) => log_.info(`moved ${n} data keys into the keys topic`));
    await readApi.upsertTwins(catalog.list());
    await projector?.start();
    await voiceProjection?.start();
    await host?.start();
    if (feed) {
      await feed.start();
      feedStarted = true;
    }
    retention?.start();
  };

  return {
    backends,
    host,
    feed,
    appDeps,
    retention,
    checks,
    async start() {
      // Every backend over the network answers before anything joins a group: an actor host whose
      // Redis is away would otherwise take partitions and serve them slowly, its checkpoints unread.
      const away = await explainUnreachable(config, backends, 3000, remoteBackends(config));
      if (away) throw away;
      try {
        await start();
      } catch (err) {
        // A backend that does not answer is named with its fix, not left to a client library's stack trace.
        const told = (await explainUnreachable(config, backends)) ?? err;
        // What did start is let go (the groups left at once, not after their session timeout), then the error is told.
        await within(stop(), 5_000).catch(() => {});
        throw told;
      }
    },
    stop,
  };
}

/** What the start log says of speech in, the caller's audio and retention (the gateway's). */
function voiceLines(config: Config, stt: string | null): Record<string, string> {
  return {
    'speech to text': stt ?? `off (${STT_HOW_TO})`,
    'caller audio': config.voice.keep ? 'kept, sealed with each conversation\'s key, in topic gemello.voice (GEMELLO_KEEP_VOICE)' : 'not kept (GEMELLO_KEEP_VOICE to keep it)',
    retention: config.retentionDays > 0 ? `conversations with no event for ${config.retentionDays} days are erased (GEMELLO_RETENTION_DAYS)` : 'off: conversations are kept (GEMELLO_RETENTION_DAYS=0)',
  };
}

/**
 * Whether nothing was ever written to the log (the broker has no events topic): then a command
 * that only looks may make the read models' schema, as the first start would; with a log that
 * holds events, a missing schema is a lost read model or a mistyped DATABASE_SCHEMA, said, not made.
 */
async function unwrittenLog(log: EventLog): Promise<boolean> {
  try {
    await log.endOffsets(TOPICS.events);
    return false;
  } catch (err) {
    if (err instanceof UnknownTopic) return true;
    throw err;
  }
}
