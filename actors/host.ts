import { randomUUID } from 'node:crypto';
import type { KeyStore } from '../sealing/keys.ts';
import type { Subscription } from '../log/port.ts';
import { TOPICS } from '../log/port.ts';
import type { EventLog } from '../log/port.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { Metrics } from '../telemetry/metrics.ts';
import { tracerFor } from '../telemetry/trace.ts';
import { createEffectWork } from './effects.ts';
import type { FlowEffects } from './flow-effects.ts';
import type { FlowRegistry } from '../flows/registry.ts';
import type { AudioSink, ReplyModel, ReplyStreams, SnapshotStore, SpeechModel, StateSource } from './ports.ts';
import { createRecovery } from './recovery.ts';
import { HISTORY_MESSAGES } from './state.ts';
import type { ConversationState } from './state.ts';
import type { TwinCatalog } from './twins.ts';
import { hostMetrics } from './host/context.ts';
import type { HostContext } from './host/context.ts';
import { handleCommands } from './host/handle-command.ts';
import { housekeeping, writeCheckpoint } from './host/housekeeping.ts';
import { startLiveness } from './host/liveness.ts';
import type { LivenessSettings } from './host/liveness.ts';
import { holdWrites } from './host/hold.ts';
import { acquire, onAssigned, release } from './host/partitions.ts';
import { writeSnapshot } from './host/snapshot.ts';
import { activeIds } from './host/warm.ts';

export { NotOwner } from './host/context.ts';
import { NotOwner } from './host/context.ts';

export type ActorHostOptions = {
  log: EventLog;
  snapshots: SnapshotStore;
  readModel: StateSource | null;
  catalog: TwinCatalog;
  replyModel: ReplyModel;
  speech?: { model: SpeechModel; sink: AudioSink } | null;
  /** The conversations' data keys; without it, content is written to the log in the clear. */
  keys?: KeyStore | null;
  /** Where replies stream to the gateways while the model writes them (absent: they arrive whole). */
  streams?: ReplyStreams | null;
  /** Speak replies sentence by sentence while they stream (default true, with speech and streams). */
  speakSentences?: boolean;
  /** Coalescing window of reply deltas (default 4 ms): a fast model does not cost a publish per token. */
  deltaFlushMs?: number;
  metrics: Metrics;
  logger: Logger;
  group?: string;
  /** Write a snapshot after this many events of a conversation (DataConfirmed always writes one). */
  snapshotEvery?: number;
  /** The most recent messages the model sees with a prompt (default 40): the context window and the cost are bounded, however long the conversation. */
  historyMessages?: number;
  /** Evict an actor idle for this long (its snapshot is written first). */
  idleMs?: number;
  /**
   * Write the snapshot of an actor quiet for this long (default 5 s, at most idleMs) though it
   * stays in memory, so a short conversation does not hold its partition's checkpoint back
   * until it is passivated.
   */
  quietMs?: number;
  /** Leases that let the other hosts take this one's partitions in under a second when it dies (null: the session timeout decides). */
  liveness?: LivenessSettings | null;
  /** Conversations held in memory at most (default 10,000): beyond, the least recently used idle ones are passivated early. */
  maxActors?: number;
  /** Events a partition's tail holds at most (default 10,000). */
  tailMaxEvents?: number;
  /** How often the partition checkpoint is written and the tail trimmed. */
  checkpointEveryMs?: number;
  now?: () => Date;
  newId?: () => string;
  /** The flows twins may run (GEMELLO_FLOWS_DIR) and where their side effects go; `model`: whether the reply model can read what parsers cannot. */
  flows?: { registry: FlowRegistry; effects: FlowEffects; noInputSec: number; model: boolean } | null;
};

/** The host's shared context, built from its options (its parts take it explicitly; tests build one too). */
export function createHostContext(options: ActorHostOptions): HostContext {
  const { log, snapshots, metrics, logger, catalog } = options;
  const tracer = tracerFor('gemello-actors');
  const keys = options.keys ?? null;
  const m = hostMetrics(metrics);
  const historyMessages = options.historyMessages ?? HISTORY_MESSAGES;
  const ctx: HostContext = {
    log,
    snapshots,
    readModel: options.readModel,
    keys,
    logger,
    tracer,
    m,
    recovery: createRecovery({ log, snapshots, readModel: options.readModel, keys, historyMessages }),
    fieldsOf: (twinId) => catalog.find(twinId, undefined)?.fields,
    work: createEffectWork({ replyModel: options.replyModel, speech: options.speech ?? null, catalog, tracer, historyMessages, modelMs: m.modelMs, errors: m.errors }),
    streams: options.streams ?? null,
    // Off with GEMELLO_SPEECH_SENTENCES=off: the whole reply is synthesised after it, as before.
    speech: options.speech && options.streams && options.speakSentences !== false
      ? { ...options.speech, voiceOf: (state) => (state.twin ? catalog.find(state.twin.id, undefined)?.voiceId : undefined) ?? 'alloy' }
      : null,
    deltaFlushMs: options.deltaFlushMs ?? 4,
    snapshotEvery: options.snapshotEvery ?? 20,
    historyMessages,
    maxActors: options.maxActors ?? 10_000,
    tailMaxEvents: options.tailMaxEvents ?? 10_000,
    idleMs: options.idleMs ?? 60_000,
    quietMs: Math.min(options.quietMs ?? 5_000, options.idleMs ?? 60_000),
    now: options.now ?? (() => new Date()),
    newId: options.newId ?? randomUUID,
    partitions: new Map(),
    stopping: false,
    fenced: false,
    alive: () => true,
    doubting: false,
    hold: null,
    epoch: 0,
    flows: options.flows
      ? {
          setting: {
            forTwin: (twinId) => {
              const name = catalog.find(twinId, undefined)?.flow;
              return name ? options.flows!.registry.current(name) : undefined;
            },
            of: (flow) => options.flows!.registry.of(flow),
            noInputSec: options.flows.noInputSec,
            model: options.flows.model,
          },
          effects: options.flows.effects,
          model: options.replyModel,
          catalog,
        }
      : null,
  };
  metrics.onCollect(() => {
    let n = 0;
    let tail = 0;
    let mailbox = 0;
    let effects = 0;
    let pending = 0;
    let snapshotsInFlight = 0;
    let appender = 0;
    let behind = 0;
    for (const p of ctx.partitions.values()) {
      n += p.actors.size;
      tail += p.tail.size;
      appender += p.appender?.waiting ?? 0;
      if (p.appender && p.checkpoint !== null) behind += p.appender.next - p.checkpoint;
      for (const a of p.actors.values()) {
        mailbox += a.busy;
        effects += a.inFlight.size;
        pending += a.state.pendingPrompts.length;
        snapshotsInFlight += (a.snapshotting ? 1 : 0) + (a.snapshotNext ? 1 : 0);
      }
    }
    m.actors.set(n);
    m.owned.set(ctx.partitions.size);
    const g = m.gauges;
    g.tail.set(tail);
    g.tailBound.set(ctx.tailMaxEvents);
    g.actorsBound.set(ctx.maxActors);
    g.mailbox.set(mailbox);
    g.effects.set(effects);
    g.pendingPrompts.set(pending);
    g.snapshots.set(snapshotsInFlight);
    g.appender.set(appender);
    g.behind.set(behind);
  });
  return ctx;
}

/** How long a fetch of commands waits on the broker (a partition taken over waits for the fetch under way). */
const COMMANDS_MAX_WAIT_MS = 25;
/** How often an actor host heartbeats in the commands group (the others' consumers: every 50 ms). */
const COMMANDS_HEARTBEAT_MS = 20;
/** How long a stopping host waits for the appends under way (each conversation's mailbox) before it hands over. */
const HANDOVER_WAIT_MS = 1_000;
/** How long it lets model and speech calls under way finish, so that their answers are not asked for twice. */
const EFFECT_GRACE_MS = 50;
/** How long it spends on snapshots and checkpoints before it leaves the group. */
const SNAPSHOT_WAIT_MS = 150;

/**
 * Owns partitions of `gemello.commands` (consumer group `gemello-actors`) and is the one
 * writer of the same partitions of `gemello.events`. Each conversation is an actor with
 * a mailbox; its state is the fold of its events, recovered by tier when not in memory.
 * The parts live in actors/host/: mailbox, commit, command handling, effects, partitions,
 * housekeeping.
 */
export function createActorHost(options: ActorHostOptions) {
  const ctx = createHostContext(options);
  const checkpointEveryMs = options.checkpointEveryMs ?? 1_000;
  let subscription: Subscription | null = null;
  let lease: { stop(): Promise<void> } | null = null;
  let timers: ReturnType<typeof setInterval>[] = [];
  const group = options.group ?? 'gemello-actors';

  return {
    /** Joins the group and starts taking commands. */
    async start(): Promise<void> {
      await ctx.log.ensureTopics([TOPICS.commands, TOPICS.events]);
      // A partition taken over is read at once (the readers connected now, not then).
      void ctx.log.prepareReads?.(TOPICS.events).catch(() => {});
      subscription = await ctx.log.consume({
        group,
        topic: TOPICS.commands,
        from: 'earliest',
        // A partition taken over is fetched once the fetch under way comes back: short fetches;
        // and a host hears that another left (a rolling restart) with its next heartbeat.
        maxWaitMs: COMMANDS_MAX_WAIT_MS,
        heartbeatMs: COMMANDS_HEARTBEAT_MS,
        onAssigned: (assigned) => onAssigned(ctx, assigned),
        // Nothing more is written until the group has said which partitions stay here.
        onRebalancing: () => holdWrites(ctx),
        // Commands of a partition being taken over gather meanwhile and are handled together.
        ready: (partition) => {
          const part = ctx.partitions.get(partition);
          return part && !part.takenOver ? part.ready : null;
        },
        handle: (partition, records) => {
          // Stopping: commands not handled yet are left (uncommitted) to the next owner.
          if (ctx.stopping) throw new NotOwner(`partition ${partition}: this host is stopping`);
          const part = ctx.partitions.get(partition);
          // A fenced host takes nothing over before the group has settled again: delivered again then.
          if (!part && ctx.fenced) throw new NotOwner(`partition ${partition}: this host is fenced until the group settles`);
          return handleCommands(ctx, part ?? acquire(ctx, partition), records);
        },
      });
      if (options.liveness) lease = startLiveness(ctx, subscription, group, options.liveness);
      let running = false;
      timers.push(setInterval(() => {
        if (running) return;
        running = true;
        housekeeping(ctx).finally(() => (running = false));
      }, checkpointEveryMs));
      for (const t of timers) t.unref?.();
    },
    /**
     * Hands its partitions over: lets the appends under way land (each conversation's mailbox
     * empties; effects get a short grace), writes snapshots and checkpoints (briefly), stops
     * writing, and leaves the group so the partitions move at once.
     * A model answer that comes after the hand-over is not recorded here: the next owner asks again.
     */
    async stop(): Promise<void> {
      const t0 = performance.now();
      const owned = [...ctx.partitions.keys()];
      ctx.stopping = true;
      for (const t of timers) clearInterval(t);
      timers = [];
      const actors = () => [...ctx.partitions.values()].flatMap((p) => [...p.actors.values()]);
      const settle = async (busy: () => boolean, ms: number) => {
        const until = performance.now() + ms;
        while (busy() && performance.now() < until) await new Promise((r) => setTimeout(r, 2));
      };
      await settle(() => actors().some((a) => a.busy > 0), HANDOVER_WAIT_MS);
      await settle(() => actors().some((a) => a.inFlight.size > 0 || a.busy > 0), EFFECT_GRACE_MS);
      const drained = performance.now();
      // Snapshots and checkpoints first, so the next owner reads an empty tail, but never for
      // long: a slow Redis costs the next owner a longer tail, not the clients a longer wait.
      const parts = [...ctx.partitions.values()];
      await Promise.race([
        Promise.all(parts.map(async (part) => {
          // The next owner reads ahead the conversations named here (a hint).
          const hinted = ctx.snapshots.putActive?.(part.id, activeIds(part)).catch(() => {});
          await Promise.all([...part.actors.values()].map((a) => (a.unsnapshottedFrom !== null ? writeSnapshot(ctx, a).catch(() => {}) : undefined)));
          await Promise.all([writeCheckpoint(ctx, part, { trim: false }), hinted]);
        })),
        new Promise((r) => setTimeout(r, SNAPSHOT_WAIT_MS)),
      ]);
      const written = performance.now();
      release(ctx, [...ctx.partitions.keys()]);
      await lease?.stop();
      lease = null;
      await subscription?.stop();
      subscription = null;
      ctx.partitions.clear();
      const ms = (a: number, b: number) => (b - a).toFixed(0);
      if (owned.length) ctx.logger.info(`handed partitions ${owned.join(',')} over in ${ms(t0, performance.now())} ms (appends under way ${ms(t0, drained)} ms, snapshots and checkpoints ${ms(drained, written)} ms, leaving the group ${ms(written, performance.now())} ms)`);
    },
    /** Partitions owned now, with their readiness. */
    owned(): number[] {
      return [...ctx.partitions.keys()].sort((a, b) => a - b);
    },
    /** Waits until every owned partition has been taken over. */
    async ready(): Promise<void> {
      await Promise.all([...ctx.partitions.values()].map((p) => p.ready));
    },
    /** The live state of a conversation held in memory, or null. */
    liveState(conversationId: string): ConversationState | null {
      for (const p of ctx.partitions.values()) {
        const a = p.actors.get(conversationId);
        if (a) return a.state;
      }
      return null;
    },
  };
}

export type ActorHost = ReturnType<typeof createActorHost>;
