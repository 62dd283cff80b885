import { randomUUID } from 'node:crypto';
import { SpanKind } from '@opentelemetry/api';
import type { Context } from '@opentelemetry/api';
import { decodeEvents, encodeNotice, encodeSealedEvent, envelope } from '../events/codec.ts';
import { hasPersonalContent, withoutContent } from '../sealing/personal.ts';
import { KeyDestroyed } from '../sealing/keys.ts';
import type { KeyStore } from '../sealing/keys.ts';
import type { DomainEvent, LogPosition, LoggedEvent } from '../events/schemas.ts';
import type { EventLog, LogRecord, Subscription } from '../log/port.ts';
import { TOPICS } from '../log/port.ts';
import { LATENCY_BUCKETS_MS } from '../telemetry/metrics.ts';
import type { Metrics } from '../telemetry/metrics.ts';
import type { Logger } from '../telemetry/logger.ts';
import { contextFrom, inSpan, traceparentOf, tracerFor } from '../telemetry/trace.ts';
import { createAppender } from './appender.ts';
import { openCommand, isSealedCommand } from '../sealing/commands.ts';
import { DomainError, WireCommand } from './commands.ts';
import type { ClientCommand } from './commands.ts';
import { decide } from './decide.ts';
import { createEffectWork } from './effects.ts';
import type { EffectOutcome } from './effects.ts';
import type { AudioSink, ReplyModel, SnapshotStore, SpeechModel, StateSource } from './ports.ts';
import { createRecovery } from './recovery.ts';
import type { Tier } from './recovery.ts';
import { fold, initialState } from './state.ts';
import type { ConversationState } from './state.ts';
import { TailIndex } from './tail.ts';
import type { TwinCatalog } from './twins.ts';

export type ActorHostOptions = {
  log: EventLog;
  snapshots: SnapshotStore;
  readModel: StateSource | null;
  catalog: TwinCatalog;
  replyModel: ReplyModel;
  speech?: { model: SpeechModel; sink: AudioSink } | null;
  /** The conversations' data keys; without it, content is written to the log in the clear. */
  keys?: KeyStore | null;
  metrics: Metrics;
  logger: Logger;
  group?: string;
  /** Write a snapshot after this many events of a conversation (DataConfirmed always writes one). */
  snapshotEvery?: number;
  /** The most recent messages the model sees with a prompt (default 40): the context window and the cost are bounded, however long the conversation. */
  historyMessages?: number;
  /** Evict an actor idle for this long (its snapshot is written first). */
  idleMs?: number;
  /** How often the partition checkpoint is written and the tail trimmed. */
  checkpointEveryMs?: number;
  now?: () => Date;
  newId?: () => string;
};

type Actor = {
  id: string;
  state: ConversationState;
  position: LogPosition | null;
  /** The mailbox: every task of this conversation runs after the previous one. */
  queue: Promise<unknown>;
  busy: number;
  lastUsed: number;
  /** Offset of the first event not yet in a written snapshot (null: the snapshot is current). */
  unsnapshottedFrom: number | null;
  sinceSnapshot: number;
  /** Offset at or before which the oldest unfinished effect was recorded (null: none). */
  pendingFrom: number | null;
  inFlight: Set<string>;
  traces: Map<number, string | null>;
  /** The conversation's data key, cached with the actor (undefined: not loaded yet; null: none, or destroyed). */
  key: Uint8Array | null | undefined;
};

type Partition = {
  id: number;
  ready: Promise<void>;
  tail: TailIndex;
  appender: ReturnType<typeof createAppender> | null;
  actors: Map<string, Actor>;
  revoked: boolean;
  checkpoint: number | null;
};

/** Thrown when this host no longer owns a conversation's partition. */
export class NotOwner extends Error {
  readonly code = 'not_owner';
}

/**
 * Owns partitions of `gemello.commands` (consumer group `gemello-actors`) and is the one
 * writer of the same partitions of `gemello.events`. Each conversation is an actor with
 * a mailbox; its state is the fold of its events, recovered by tier when not in memory.
 */
export function createActorHost(options: ActorHostOptions) {
  const { log, snapshots, metrics, logger, catalog } = options;
  const snapshotEvery = options.snapshotEvery ?? 20;
  const historyMessages = options.historyMessages ?? 40;
  const idleMs = options.idleMs ?? 60_000;
  const checkpointEveryMs = options.checkpointEveryMs ?? 1_000;
  const now = options.now ?? (() => new Date());
  const newId = options.newId ?? randomUUID;
  const tracer = tracerFor('gemello-actors');
  const keys = options.keys ?? null;
  const recovery = createRecovery({ log, snapshots, readModel: options.readModel, keys });
  const partitions = new Map<number, Partition>();
  let subscription: Subscription | null = null;
  let timers: ReturnType<typeof setInterval>[] = [];
  let stopping = false;

  const m = {
    commands: metrics.counter('gemello_commands_total', 'Commands handled by the actor host, by type and outcome'),
    events: metrics.counter('gemello_events_appended_total', 'Events appended to the log'),
    recoveries: metrics.counter('gemello_recovery_total', 'Actor activations by recovery tier'),
    recoveryMs: metrics.histogram('gemello_recovery_ms', 'Actor activation time by tier', [0.25, 0.5, 1, 2, 5, 10, 25, 50, 100, 500, 2000]),
    modelMs: metrics.histogram('gemello_model_latency_ms', 'Model call latency', LATENCY_BUCKETS_MS),
    errors: metrics.counter('gemello_errors_total', 'Errors by kind'),
    actors: metrics.gauge('gemello_actors_active', 'Conversations held in memory'),
    owned: metrics.gauge('gemello_partitions_owned', 'Partitions this host owns'),
    foreign: metrics.counter('gemello_foreign_writes_total', 'Records written into an owned partition by another host (fenced)'),
  };
  const work = createEffectWork({ replyModel: options.replyModel, speech: options.speech ?? null, catalog, tracer, historyMessages, modelMs: m.modelMs, errors: m.errors });
  metrics.onCollect(() => {
    let n = 0;
    for (const p of partitions.values()) n += p.actors.size;
    m.actors.set(n);
    m.owned.set(partitions.size);
  });

  // ---- mailbox -------------------------------------------------------------------

  function run<T>(actor: Actor, task: () => Promise<T>): Promise<T> {
    actor.busy++;
    actor.lastUsed = Date.now();
    const result = actor.queue.then(task);
    actor.queue = result.then(
      () => void actor.busy--,
      () => void actor.busy--,
    );
    return result;
  }

  function actorFor(part: Partition, conversationId: string): Actor {
    let actor = part.actors.get(conversationId);
    if (actor) return actor;
    actor = {
      id: conversationId,
      state: initialState(conversationId),
      position: null,
      queue: Promise.resolve(),
      busy: 0,
      lastUsed: Date.now(),
      unsnapshottedFrom: null,
      sinceSnapshot: 0,
      pendingFrom: null,
      inFlight: new Set(),
      traces: new Map(),
      key: undefined,
    };
    part.actors.set(conversationId, actor);
    const a = actor;
    // The first task of a new mailbox brings the state back; a failure evicts the actor
    // so the next command tries again.
    run(a, async () => {
      try {
        await activate(part, a);
      } catch (err) {
        part.actors.delete(conversationId);
        throw err;
      }
    }).catch((err) => logger.error(`activation of ${conversationId} failed: ${(err as Error).message}`));
    return actor;
  }

  async function activate(part: Partition, actor: Actor): Promise<Tier> {
    const t0 = performance.now();
    const r = await recovery.recover(actor.id, part.id, part.tail);
    actor.state = r.state;
    actor.position = r.position;
    const ms = performance.now() - t0;
    m.recoveries.inc({ tier: r.tier });
    m.recoveryMs.observe(ms, { tier: r.tier });
    if (r.skipped.length && r.state.seq > 0) logger.info(`recovered ${actor.id} at seq ${r.state.seq} from ${r.tier} (${r.skipped.join('; ')})`);
    if (r.tier !== 'snapshot' || r.folded > 0) {
      // Not (fully) in a snapshot yet: pin the checkpoint at the tail and write one.
      if (r.state.seq > 0) {
        actor.unsnapshottedFrom = part.tail.start;
        void snapshot(actor).catch(() => {});
      }
    }
    if (hasPendingWork(actor.state)) {
      actor.pendingFrom = part.tail.start;
      scheduleEffects(part, actor);
    }
    return r.tier;
  }

  // ---- appending -----------------------------------------------------------------

  const hasPendingWork = (s: ConversationState) => s.pendingPrompts.length > 0 || s.pendingAudio.length > 0;

  async function commit(part: Partition, actor: Actor, events: DomainEvent[], meta: { causationId: string | null; correlationId: string | null; traceparent: string | null }): Promise<LoggedEvent[]> {
    if (part.revoked || !part.appender) throw new NotOwner(`partition ${part.id} is not owned by this host`);
    // The key is made with the conversation's first content (get-or-create: the gateway may have made it).
    if (keys && !actor.key && events.some((e) => hasPersonalContent(e.type))) actor.key = await keys.create(actor.id);
    const key = actor.key;
    const { envs, next, base } = await inSpan(tracer, 'event.append', {
      parent: contextFrom(meta.traceparent),
      kind: SpanKind.PRODUCER,
      attributes: { 'conversation.id': actor.id, 'event.seq': actor.state.seq + 1, 'event.types': events.map((e) => e.type).join(','), 'messaging.kafka.partition': part.id },
    }, async (span, ctx) => {
      // The events carry this span's context: what they cause downstream (projections, the socket, a snapshot) hangs under their append.
      const envs = envelope(actor.id, actor.state.seq, events, { ...meta, traceparent: traceparentOf(ctx) ?? meta.traceparent, now: now(), newId });
      const next = fold(actor.id, envs, actor.state);
      const base = await part.appender!.append(envs.map((e) => encodeSealedEvent(e, key)));
      span.setAttribute('messaging.kafka.offset', base);
      return { envs, next, base };
    });
    const logged = envs.map((e, i) => ({ ...e, position: { partition: part.id, offset: base + i } }) as LoggedEvent);
    for (const e of logged) part.tail.add(e);
    actor.state = next;
    actor.position = logged[logged.length - 1]!.position;
    actor.unsnapshottedFrom ??= base;
    actor.sinceSnapshot += logged.length;
    if (hasPendingWork(next)) actor.pendingFrom ??= base;
    else actor.pendingFrom = null;
    m.events.inc({}, logged.length);
    if (actor.sinceSnapshot >= snapshotEvery) {
      void snapshot(actor, contextFrom(envs[0]!.traceparent)).catch((err) => logger.warn(`snapshot of ${actor.id} failed: ${(err as Error).message}`));
    }
    for (const e of logged) if (e.type === 'PromptReceived') actor.traces.set(e.seq, meta.traceparent);
    scheduleEffects(part, actor);
    return logged;
  }

  async function snapshot(actor: Actor, parent?: Context): Promise<void> {
    if (!actor.position) return;
    if (actor.state.erased) {
      // An erased conversation keeps no snapshot: it recovers from the read model or the log.
      await snapshots.delete(actor.id);
      actor.unsnapshottedFrom = null;
      actor.sinceSnapshot = 0;
      return;
    }
    const state = actor.state;
    const position = actor.position;
    await inSpan(tracer, 'snapshot.write', { parent, kind: SpanKind.CLIENT, attributes: { 'conversation.id': actor.id, 'event.seq': state.seq } }, () =>
      snapshots.put({ conversationId: actor.id, seq: state.seq, eventId: state.lastEventId, position, state }),
    );
    // Erased while this one was written: it must not outlive the erasure.
    if (actor.state.erased) await snapshots.delete(actor.id);
    if (actor.state.seq === state.seq) {
      actor.unsnapshottedFrom = null;
      actor.sinceSnapshot = 0;
    } else if (actor.unsnapshottedFrom !== null && actor.unsnapshottedFrom <= position.offset) {
      actor.unsnapshottedFrom = position.offset + 1;
    }
  }

  // ---- commands ------------------------------------------------------------------

  async function handleClient(part: Partition, actor: Actor, wire: WireCommand, offset: number): Promise<void> {
    const parent = contextFrom(wire.traceparent);
    const attributes = { 'conversation.id': wire.conversationId, 'command.type': wire.type, 'messaging.kafka.partition': part.id, 'messaging.kafka.offset': offset, ...(wire.type === 'SubmitPrompt' ? { 'twin.id': wire.data.twin.id } : {}) };
    await inSpan(tracer, 'actor.handle', { parent, kind: SpanKind.CONSUMER, attributes }, async (_span, ctx) => {
      const reject = async (code: string, message: string) => {
        m.commands.inc({ type: wire.type, outcome: 'rejected' });
        m.errors.inc({ kind: code });
        await part.appender!.append([encodeNotice({ type: 'rejected', commandId: wire.commandId, conversationId: wire.conversationId, correlationId: wire.correlationId, code, message })]);
      };
      // The gateway sealed the prompt or data with the conversation's key; a resident actor has it cached.
      if (keys && !actor.key && isSealedCommand(wire)) actor.key = (await keys.get([actor.id])).get(actor.id) ?? null;
      const cmd = openCommand(wire, actor.key);
      if (!cmd) {
        if (actor.state.erased) return reject('conversation_erased', `conversation ${actor.id} was erased; start a new one`);
        return reject('unreadable_command', `the command's content cannot be read with conversation ${actor.id}'s key`);
      }
      let events: DomainEvent[];
      try {
        events = decide(cmd, actor.state);
      } catch (err) {
        if (!(err instanceof DomainError)) throw err;
        return reject(err.code, err.message);
      }
      m.commands.inc({ type: cmd.type, outcome: events.length ? 'applied' : 'duplicate' });
      if (events.length) {
        const traceparent = traceparentOf(ctx) ?? cmd.traceparent;
        let logged: LoggedEvent[];
        try {
          logged = await commit(part, actor, events, { causationId: cmd.commandId, correlationId: cmd.correlationId, traceparent });
        } catch (err) {
          if (err instanceof KeyDestroyed) return reject('conversation_erased', err.message);
          throw err;
        }
        const confirmed = logged.find((e) => e.type === 'DataConfirmed');
        if (confirmed) {
          // Confirmed data is critical: the snapshot is written before the client is told.
          await snapshot(actor);
          await part.appender!.append([encodeNotice({ type: 'confirmed', commandId: cmd.commandId, conversationId: cmd.conversationId, correlationId: cmd.correlationId, seq: confirmed.seq, data: actor.state.confirmedData }, actor.key)]);
        }
      }
      if (cmd.type === 'EraseConversation') await completeErasure(part, actor, cmd, events.length > 0);
    });
  }

  /**
   * After ConversationErased is in the log: destroys the key (every copy of the content in
   * the log becomes unreadable), drops the snapshot and the content held in memory, then
   * tells the sender. Runs again when the command is redelivered (a crash in between), so
   * an erasure always completes.
   */
  async function completeErasure(part: Partition, actor: Actor, cmd: ClientCommand, now: boolean): Promise<void> {
    const erased = actor.state.erased!;
    const keyDestroyed = keys ? await keys.destroy(actor.id) : false;
    actor.key = null;
    part.tail.update(actor.id, withoutContent);
    actor.traces.clear();
    if (actor.position) await snapshot(actor);
    else await snapshots.delete(actor.id);
    const { seq, at, by, prompts, replies, confirmedFields } = erased;
    logger.info(`erased conversation ${actor.id} at seq ${seq}${now ? '' : ' (before)'}: ${prompts} prompts, ${replies} replies, ${confirmedFields} confirmed fields`);
    await part.appender!.append([encodeNotice({
      type: 'erased', commandId: cmd.commandId, conversationId: actor.id, correlationId: cmd.correlationId,
      erasure: { seq, erasedAt: at, by, prompts, replies, confirmedFields, now, keyDestroyed },
    })]);
  }

  async function handleCommands(partitionId: number, records: LogRecord[]): Promise<void> {
    const part = partitions.get(partitionId) ?? acquire(partitionId);
    await part.ready;
    const work: Promise<void>[] = [];
    for (const record of records) {
      let cmd: WireCommand;
      try {
        const parsed = WireCommand.safeParse(JSON.parse(record.value));
        if (!parsed.success) throw new Error(parsed.error.issues[0]?.message);
        cmd = parsed.data;
      } catch (err) {
        m.errors.inc({ kind: 'bad_command' });
        logger.warn(`skipping an invalid command at ${record.partition}/${record.offset}: ${(err as Error).message}`);
        continue;
      }
      const actor = actorFor(part, cmd.conversationId);
      work.push(run(actor, () => handleClient(part, actor, cmd, record.offset)));
    }
    // The batch's offsets are committed only when every command in it is in the log.
    await Promise.all(work);
  }

  // ---- effects -------------------------------------------------------------------

  function scheduleEffects(part: Partition, actor: Actor): void {
    if (stopping || part.revoked) return;
    const promptSeq = actor.state.pendingPrompts[0];
    if (promptSeq !== undefined && !actor.inFlight.has(`p${promptSeq}`)) {
      actor.inFlight.add(`p${promptSeq}`);
      void effect(part, actor, `p${promptSeq}`, () => work.reply(actor.id, actor.state, promptSeq, actor.traces.get(promptSeq) ?? null));
    }
    const replySeq = actor.state.pendingAudio[0];
    if (replySeq !== undefined && !actor.inFlight.has(`a${replySeq}`)) {
      actor.inFlight.add(`a${replySeq}`);
      void effect(part, actor, `a${replySeq}`, () => work.audio(actor.state, replySeq));
    }
  }

  /** Runs a side effect, then records its outcome through the mailbox; retried later if recording fails. */
  async function effect(part: Partition, actor: Actor, key: string, outcome: () => Promise<EffectOutcome>) {
    try {
      const { command, traceparent } = await outcome();
      await run(actor, async () => {
        const events = decide(command, actor.state);
        if (events.length) await commit(part, actor, events, { causationId: null, correlationId: null, traceparent });
      });
      actor.inFlight.delete(key);
    } catch (err) {
      actor.inFlight.delete(key);
      if (err instanceof NotOwner || err instanceof KeyDestroyed || stopping) return;
      m.errors.inc({ kind: 'effect_record_failed' });
      logger.warn(`recording ${key} of ${actor.id} failed (${(err as Error).message}); retrying in 1 s`);
      setTimeout(() => part.actors.get(actor.id) === actor && scheduleEffects(part, actor), 1000).unref?.();
    }
  }

  // ---- partitions ----------------------------------------------------------------

  /** Takes a partition over: reads the log from the checkpoint, then activates every conversation seen there. */
  function acquire(id: number): Partition {
    const part: Partition = { id, ready: Promise.resolve(), tail: new TailIndex(0), appender: null, actors: new Map(), revoked: false, checkpoint: null };
    partitions.set(id, part);
    part.ready = (async () => {
      const t0 = performance.now();
      const snapCp = await snapshots.getCheckpoint(id).catch(() => null);
      const rmCp = options.readModel ? await options.readModel.coveredUntil(id).catch(() => null) : null;
      const known = [snapCp, rmCp].filter((x): x is number => x !== null);
      const start = known.length ? Math.min(...known) : 0;
      part.tail = new TailIndex(start);
      const end = await log.read(TOPICS.events, id, start, async (records) => {
        for (const e of await decodeEvents(records, keys)) {
          if (e.type === 'ConversationErased') {
            // What was read before the erasure is not kept in memory.
            part.tail.update(e.conversationId, withoutContent);
            keys?.forget(e.conversationId);
          }
          part.tail.add(e);
        }
      });
      part.appender = createAppender({ log, topic: TOPICS.events, partition: id, next: end, onForeign: (from, to) => reconcile(part, from, to) });
      part.checkpoint = snapCp;
      const ids = [...part.tail.conversations()];
      await Promise.all(ids.map((cid) => { const a = actorFor(part, cid); return run(a, async () => {}); }));
      if (end > start) logger.info(`partition ${id}: read ${end - start} records from offset ${start} in ${(performance.now() - t0).toFixed(0)} ms; ${ids.length} conversations active`);
    })();
    part.ready.catch((err) => {
      logger.error(`taking partition ${id} over failed: ${(err as Error).message}`);
      if (partitions.get(id) === part) partitions.delete(id);
    });
    return part;
  }

  /** Another writer appended into an owned partition: those records come first in the log, so the actors they touch are rebuilt. */
  async function reconcile(part: Partition, from: number, to: number): Promise<void> {
    m.foreign.inc({}, to - from);
    logger.warn(`partition ${part.id}: ${to - from} records at ${from}..${to - 1} were written by another host; rebuilding the conversations they touch`);
    const touched = new Set<string>();
    await log.read(TOPICS.events, part.id, from, async (records) => {
      for (const e of await decodeEvents(records.filter((r) => r.offset < to), keys)) {
        part.tail.add(e);
        touched.add(e.conversationId);
      }
    });
    for (const id of touched) {
      part.actors.delete(id);
      await snapshots.delete(id).catch(() => {});
    }
  }

  function release(id: number): void {
    const part = partitions.get(id);
    if (!part) return;
    // Another host owns it now: stop writing. No snapshot is written, since the new
    // owner's may already be newer.
    part.revoked = true;
    partitions.delete(id);
    logger.info(`partition ${id} released (${part.actors.size} actors dropped)`);
  }

  async function onAssigned(assigned: number[]): Promise<void> {
    const set = new Set(assigned);
    for (const id of [...partitions.keys()]) if (!set.has(id)) release(id);
    for (const id of assigned) if (!partitions.has(id)) acquire(id);
  }

  // ---- housekeeping --------------------------------------------------------------

  async function housekeeping(): Promise<void> {
    const cutoff = Date.now() - idleMs;
    for (const part of partitions.values()) {
      if (!part.appender) continue;
      for (const actor of [...part.actors.values()]) {
        if (actor.lastUsed > cutoff || actor.busy > 0 || actor.inFlight.size > 0 || hasPendingWork(actor.state)) continue;
        try {
          if (actor.unsnapshottedFrom !== null) await snapshot(actor);
          if (actor.busy === 0 && actor.unsnapshottedFrom === null) part.actors.delete(actor.id);
        } catch (err) {
          logger.warn(`passivating ${actor.id}: ${(err as Error).message}`);
        }
      }
      await writeCheckpoint(part);
    }
  }

  async function writeCheckpoint(part: Partition): Promise<void> {
    if (!part.appender || part.revoked) return;
    let cp = part.appender.next;
    for (const a of part.actors.values()) {
      if (a.unsnapshottedFrom !== null) cp = Math.min(cp, a.unsnapshottedFrom);
      if (a.pendingFrom !== null) cp = Math.min(cp, a.pendingFrom);
    }
    if (cp !== part.checkpoint) {
      await snapshots.putCheckpoint(part.id, cp).catch((err) => logger.warn(`checkpoint of partition ${part.id}: ${(err as Error).message}`));
      part.checkpoint = cp;
    }
    let keepFrom = cp;
    if (options.readModel) {
      const covered = await options.readModel.coveredUntil(part.id).catch(() => null);
      keepFrom = Math.min(keepFrom, covered ?? part.tail.start);
    }
    part.tail.trim(keepFrom);
  }

  return {
    /** Joins the group and starts taking commands. */
    async start(): Promise<void> {
      await log.ensureTopics([TOPICS.commands, TOPICS.events]);
      subscription = await log.consume({ group: options.group ?? 'gemello-actors', topic: TOPICS.commands, from: 'earliest', onAssigned, handle: handleCommands });
      let running = false;
      timers.push(setInterval(() => {
        if (running) return;
        running = true;
        housekeeping().finally(() => (running = false));
      }, checkpointEveryMs));
      for (const t of timers) t.unref?.();
    },
    /** Leaves the group after writing snapshots and checkpoints of what it holds. */
    async stop(): Promise<void> {
      stopping = true;
      for (const t of timers) clearInterval(t);
      timers = [];
      await subscription?.stop();
      subscription = null;
      for (const part of partitions.values()) {
        await part.ready.catch(() => {});
        for (const a of part.actors.values()) {
          await a.queue.catch(() => {});
          if (a.unsnapshottedFrom !== null) await snapshot(a).catch(() => {});
        }
        await writeCheckpoint(part);
      }
      partitions.clear();
    },
    /** Partitions owned now, with their readiness. */
    owned(): number[] {
      return [...partitions.keys()].sort((a, b) => a - b);
    },
    /** Waits until every owned partition has been taken over. */
    async ready(): Promise<void> {
      await Promise.all([...partitions.values()].map((p) => p.ready));
    },
    /** The live state of a conversation held in memory, or null. */
    liveState(conversationId: string): ConversationState | null {
      for (const p of partitions.values()) {
        const a = p.actors.get(conversationId);
        if (a) return a.state;
      }
      return null;
    },
  };
}

export type ActorHost = ReturnType<typeof createActorHost>;
