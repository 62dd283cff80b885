import type { Tracer } from '@opentelemetry/api';
import type { KeyStore } from '../../sealing/keys.ts';
import type { LogPosition } from '../../events/schemas.ts';
import type { EventLog } from '../../log/port.ts';
import type { Logger } from '../../telemetry/logger.ts';
import { LATENCY_BUCKETS_MS } from '../../telemetry/metrics.ts';
import type { Metrics } from '../../telemetry/metrics.ts';
import type { createAppender } from '../appender.ts';
import type { createEffectWork } from '../effects.ts';
import type { AudioSink, ReplyStreams, Snapshot, SnapshotStore, SpeechModel, StateSource } from '../ports.ts';
import type { Speaker } from './speaker.ts';
import type { createRecovery } from '../recovery.ts';
import type { ConversationState } from '../state.ts';
import type { TailIndex } from '../tail.ts';
import type { FlowSetting } from '../decide.ts';
import type { FlowEffects } from '../flow-effects.ts';
import type { ReplyModel, TwinField } from '../ports.ts';
import type { TwinCatalog } from '../twins.ts';

/** One conversation held in memory by the host. */
export type Actor = {
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
  /**
   * Where each piece of pending work (by the seq of its prompt or reply) was recorded, so
   * pendingFrom follows the oldest one still open. With "set when work appears, cleared when
   * none is left", a conversation whose next prompt always arrived before the last reply's
   * speech was done never cleared it: the partition's checkpoint stayed where the
   * conversation began and the tail held every event after it (issue 15).
   */
  pendingAt: Map<string, number>;
  inFlight: Set<string>;
  /** How many times in a row each effect (by its inFlight key) failed before it had an outcome: how long its next attempt waits. */
  failures: Map<string, number>;
  /** The trace of each pending prompt and of each reply whose speech is pending, by seq (dropped once answered or spoken). */
  traces: Map<number, string | null>;
  /** The trace of what caused the actor's last append (null: none, or not since it was recovered): what its flow's work continues. */
  lastTrace: string | null;
  /**
   * Pending prompts whose sender takes only the whole reply (SubmitPrompt `stream: false`):
   * the model is asked for it in one piece and nothing goes to the reply streams. Only in
   * memory: a prompt taken over from another host, or recovered, is streamed (the default).
   */
  quiet: Set<number>;
  /** The snapshot write under way, and the one queued behind it: one at a time per conversation. */
  snapshotting: Promise<void> | null;
  snapshotNext: Promise<void> | null;
  /** The conversation's data key, cached with the actor (undefined: not loaded yet; null: none, or destroyed). */
  key: Uint8Array | null | undefined;
  /** The flow's noInput timer armed in this process (the timer itself is in the log: MessageSaid.awaitUntil). */
  flowTimer: { seq: number; handle: ReturnType<typeof setTimeout> } | null;
  /** The flow's side effect under way here (a backend call, an email): aborted when the flow no longer waits on it, so no attempt of it is made after. */
  flowEffect: { key: string; abort: AbortController } | null;
  /** The reply the model is generating now (a stop aborts it), or null. */
  generation: Generation | null;
  /** Set when the log moved past this actor's state (a write in doubt that landed, another writer): it writes nothing more, a new actor took its place. */
  replaced: boolean;
  /** Replies being spoken sentence by sentence, by prompt seq (a stop silences them all). */
  speakers: Map<number, Speaker>;
};

/** One run of the model for a prompt: its live text and the means to cancel it. */
export type Generation = {
  promptSeq: number;
  /** Tells this run's deltas from an earlier host's (a restart) on the reply streams. */
  gen: string;
  /** Everything the model produced so far (published or not yet). */
  text: string;
  abort: AbortController;
  /** Speaks the reply sentence by sentence as it streams (null: no speech, or no reply streams). */
  speaker: Speaker | null;
  /** Set by a stop: what the model still sends is dropped. */
  stopped: boolean;
  /** Takes the model's next piece of text. */
  onText(delta: string): void;
  /** Publishes what is not yet published; with the final text, first makes the deltas add up to it. */
  settle(finalText: string | null): Promise<void>;
  /** The reply's event is in the log: the stream is over. */
  end(): void;
};

/** A partition of the events topic this host owns (or is taking over). */
export type Partition = {
  id: number;
  ready: Promise<void>;
  tail: TailIndex;
  appender: ReturnType<typeof createAppender> | null;
  actors: Map<string, Actor>;
  revoked: boolean;
  checkpoint: number | null;
  /** Taken over and ready: commands are handled at once (until then they gather into one batch). */
  takenOver: boolean;
  /** Snapshots read ahead for conversations not yet activated (warm.ts): a hint, used once each. */
  warm: Map<string, Promise<Snapshot | null>>;
};

export function hostMetrics(metrics: Metrics) {
  return {
    commands: metrics.counter('gemello_commands_total', 'Commands handled by the actor host, by type and outcome'),
    events: metrics.counter('gemello_events_appended_total', 'Events appended to the log'),
    recoveries: metrics.counter('gemello_recovery_total', 'Actor activations by recovery tier'),
    recoveryMs: metrics.histogram('gemello_recovery_ms', 'Actor activation time by tier', [0.25, 0.5, 1, 2, 5, 10, 25, 50, 100, 500, 2000]),
    modelMs: metrics.histogram('gemello_model_latency_ms', 'Model call latency', LATENCY_BUCKETS_MS),
    speechMs: metrics.histogram('gemello_speech_sentence_ms', 'Time to synthesise one sentence of a reply (cache misses only)', LATENCY_BUCKETS_MS),
    errors: metrics.counter('gemello_errors_total', 'Errors by kind'),
    actors: metrics.gauge('gemello_actors_active', 'Conversations held in memory'),
    owned: metrics.gauge('gemello_partitions_owned', 'Partitions this host owns'),
    foreign: metrics.counter('gemello_foreign_writes_total', 'Records written into an owned partition by another host (fenced)'),
    appendsInDoubt: metrics.counter('gemello_appends_in_doubt_total', 'Appends that failed on this host\'s side, by whether the log held them all the same (landed=yes: their conversations were rebuilt from the log)'),
    flowsEnded: metrics.counter('gemello_flows_ended_total', 'Flows that ended, by flow and reason (completed, transferred, gave_up, error)'),
    flowTransfers: metrics.counter('gemello_flow_transfers_total', 'Conversations a flow handed over to an operator, by flow and operator'),
    flowEffects: metrics.counter('gemello_flow_effects_total', 'Flow side effects (backend calls, emails, SMS) by kind and status'),
    evicted: metrics.counter('gemello_actors_evicted_total', 'Actors passivated before their idle time because the host held GEMELLO_MAX_ACTORS'),
    tailTrimmedPastCheckpoint: metrics.counter('gemello_tail_trimmed_past_checkpoint_total', 'Tail events dropped at GEMELLO_TAIL_MAX_EVENTS although the checkpoint had not passed them (a later activation of their conversation may fall back to a slower tier)'),
    gauges: {
      tail: metrics.gauge('gemello_actor_tail_events', 'Events held in the partitions\' tails (bound: GEMELLO_TAIL_MAX_EVENTS per partition)'),
      tailBound: metrics.gauge('gemello_actor_tail_events_bound', 'The bound of a partition\'s tail'),
      actorsBound: metrics.gauge('gemello_actors_bound', 'Conversations held in memory at most (GEMELLO_MAX_ACTORS)'),
      mailbox: metrics.gauge('gemello_actor_mailbox_tasks', 'Tasks queued or running in the actors\' mailboxes'),
      effects: metrics.gauge('gemello_actor_effects_in_flight', 'Model and speech calls under way'),
      pendingPrompts: metrics.gauge('gemello_actor_pending_prompts', 'Prompts waiting for their reply, over resident conversations (bound: 16 per conversation)'),
      snapshots: metrics.gauge('gemello_actor_snapshot_writes_in_flight', 'Snapshot writes under way or queued (at most two per conversation)'),
      appender: metrics.gauge('gemello_actor_append_queue_records', 'Records waiting for the append in flight, over partitions'),
      behind: metrics.gauge('gemello_actor_checkpoint_lag_records', 'Records between a partition\'s checkpoint and its end, summed: what a takeover would read'),
    },
  };
}

/**
 * Everything the host's parts share, passed to each explicitly: the ports, the settings,
 * and the mutable state (the partitions it owns, whether it is stopping).
 */
export type HostContext = {
  log: EventLog;
  snapshots: SnapshotStore;
  readModel: StateSource | null;
  keys: KeyStore | null;
  logger: Logger;
  tracer: Tracer;
  m: ReturnType<typeof hostMetrics>;
  recovery: ReturnType<typeof createRecovery>;
  work: ReturnType<typeof createEffectWork>;
  /** Live reply text to the gateways (null: replies arrive whole). */
  streams: ReplyStreams | null;
  /** Speech, for replies spoken sentence by sentence while they stream (null: speech off, or no streams). */
  speech: { model: SpeechModel; sink: AudioSink; voiceOf: (state: ConversationState) => string } | null;
  /** Deltas are coalesced: at most one publish per this many ms per reply. */
  deltaFlushMs: number;
  snapshotEvery: number;
  /** Messages a conversation's state keeps (GEMELLO_HISTORY_MESSAGES). */
  historyMessages: number;
  /** Conversations held in memory at most; beyond, the least recently used idle ones are passivated early. */
  maxActors: number;
  /** Events a partition's tail holds at most. */
  tailMaxEvents: number;
  idleMs: number;
  /** An actor quiet this long gets its snapshot written (it stays resident): the checkpoint can pass it. */
  quietMs: number;
  now: () => Date;
  newId: () => string;
  partitions: Map<number, Partition>;
  stopping: boolean;
  /** Set when this host may have lost its partitions without being told (it was frozen): it takes none over until the group settles again. */
  fenced: boolean;
  /**
   * Checked before every append: true while this host is sure it owns its partitions; after a
   * stall longer than its lease, a promise of whether the group still counts it at the same
   * generation (appends wait for it; see host/liveness.ts).
   */
  alive: () => true | Promise<boolean>;
  /** Set while that question is open. */
  doubting: boolean;
  /** Set from the moment the group begins to rebalance until it settles (onAssigned): appends wait (host/hold.ts). */
  hold: { until: Promise<void>; release: () => void; since: number } | null;
  /** Counts the group's assignments to this host (each time it settles). */
  epoch: number;
  /** The fields a twin of the catalog collects (what confirmed data is checked against). */
  fieldsOf: (twinId: string) => TwinField[] | undefined;
  /** The flows this host runs, and what their side effects go through (null: no flows). */
  flows: { setting: FlowSetting; effects: FlowEffects; model: ReplyModel; catalog: TwinCatalog } | null;
};

/** Thrown when this host no longer owns a conversation's partition. */
export class NotOwner extends Error {
  readonly code = 'not_owner';
}

/** Whether the conversation owes work: a reply, audio, or a flow's side effect, model reading or noInput timer (a host taking it over must find it). */
/** Each piece of work the state says is open, by a key of its own (what hasPendingWork looks at, one by one). */
export function openWork(s: ConversationState): Set<string> {
  const open = new Set<string>();
  for (const seq of s.pendingPrompts) open.add(`p${seq}`);
  for (const seq of s.pendingAudio) open.add(`a${seq}`);
  const f = s.flow;
  // Erased: nothing is owed (a snapshot folded before erasure ended the flow may still say running).
  if (f && f.status === 'running' && !s.erased) {
    if (f.effect) open.add(`e${f.effect.key}`);
    if (f.read) open.add(`r${f.read.promptSeq}`);
    if (f.timer) open.add(`t${f.timer.seq}`);
  }
  return open;
}

export const hasPendingWork = (s: ConversationState): boolean =>
  s.pendingPrompts.length > 0 || s.pendingAudio.length > 0 || (s.flow !== undefined && s.flow.status === 'running' && !s.erased && (s.flow.effect !== undefined || s.flow.read !== undefined || s.flow.timer !== undefined));
