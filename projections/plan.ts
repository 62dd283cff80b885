import type { LoggedEvent } from '../events/schemas.ts';
import { evolve, initialState } from '../actors/state.ts';
import type { ConversationState } from '../actors/state.ts';
import { isoOrNull } from './iso-ms.ts';

/**
 * The fold as stored in conversations.state: everything but `messages`, which are the rows
 * of the messages table (recovery reads the most recent of them). Writing the whole
 * transcript again with every event made the upsert the projector's bottleneck (and its
 * cost grow with the conversation); what is left is bounded (counters, pending work, the
 * open proposal, confirmed data).
 */
export type StoredState = Omit<ConversationState, 'messages'>;

/** What the read model holds of a conversation before a batch. */
export type Prior = { state: StoredState; metadata: Record<string, unknown> };

export type ConversationRow = {
  id: string;
  twin_id: string | null;
  twin_name: string | null;
  user_id: string | null;
  started_at: string | null;
  metadata: Record<string, unknown>;
  state: StoredState;
  last_seq: number;
  last_event_id: string | null;
  last_event_at: string | null;
  last_partition: number;
  last_offset: number;
};

export type MessageRow = {
  conversation_id: string;
  seq: number;
  role: 'user' | 'assistant';
  content: string;
  reply_to_seq: number | null;
  tokens_used: number | null;
  prompt_tokens: number | null;
  completion_tokens: number | null;
  model: string | null;
  model_latency_ms: number | null;
  request_id: string | null;
  event_id: string;
  created_at: string | null;
};

export type ConfirmedRow = { conversation_id: string; seq: number; key: string; value: unknown; event_id: string; confirmed_at: string | null };

export type EventRow = {
  event_id: string;
  conversation_id: string;
  seq: number;
  type: string;
  schema_version: number;
  occurred_at: string | null;
  causation_id: string | null;
  correlation_id: string | null;
  traceparent: string | null;
  data: unknown;
  partition: number;
  log_offset: number;
};

/** A merge into a reply's metadata (speech info). */
export type MessagePatch = { conversation_id: string; seq: number; patch: Record<string, unknown> };

/** A conversation erased in this batch: its content rows go, after this batch's rows are written. */
export type ErasureRow = { conversation_id: string; erased_at: string | null };

/** The rows a batch of events turns into, and what was left out. */
export type Plan = {
  conversations: ConversationRow[];
  messages: MessageRow[];
  confirmed: ConfirmedRow[];
  events: EventRow[];
  patches: MessagePatch[];
  erased: ErasureRow[];
  /** The events applied, in order. */
  applied: LoggedEvent[];
  /** Events whose seq was already applied (the log rule: the first event with a seq wins). */
  duplicates: LoggedEvent[];
  /** Events that skip a seq: a broken log; they cannot be folded and are left out. */
  gaps: { event: LoggedEvent; reason: string }[];
};

/** A message row of `e` (made whole here, one object a row: a batch makes thousands). */
const messageRow = (e: LoggedEvent, at: string | null, role: MessageRow['role'], content: string, replyTo: number | null, requestId: string | null): MessageRow => ({
  conversation_id: e.conversationId,
  seq: e.seq,
  role,
  content,
  reply_to_seq: replyTo,
  tokens_used: null,
  prompt_tokens: null,
  completion_tokens: null,
  model: null,
  model_latency_ms: null,
  request_id: requestId,
  event_id: e.eventId,
  created_at: at,
});

/**
 * Folds a batch of events (one or more partitions', each in offset order) onto the prior state of their conversations and
 * returns the rows to write. Pure: the same prior and events always give the same rows.
 */
export function planBatch(prior: Map<string, Prior>, events: LoggedEvent[]): Plan {
  const plan: Plan = { conversations: [], messages: [], confirmed: [], events: [], patches: [], erased: [], applied: [], duplicates: [], gaps: [] };
  const touched = new Map<string, { prior: Prior; state: ConversationState; last: LoggedEvent }>();
  // Messages are not needed to fold (no decision reads them here) and are not stored in the state.
  const priorState = (id: string): ConversationState => {
    const p = prior.get(id);
    return p ? { ...p.state, messages: [] } : initialState(id);
  };
  const patches = new Map<string, MessagePatch>();
  for (const e of events) {
    const id = e.conversationId;
    let t = touched.get(id);
    const before = t?.state ?? priorState(id);
    if (e.seq <= before.seq) {
      plan.duplicates.push(e);
      continue;
    }
    let state: ConversationState;
    try {
      // Keeps no messages: they are the messages rows, not part of conversations.state.
      state = evolve(before, e, 0);
    } catch (err) {
      plan.gaps.push({ event: e, reason: (err as Error).message });
      continue;
    }
    if (!t) {
      t = { prior: prior.get(id) ?? { state: before, metadata: {} }, state, last: e };
      touched.set(id, t);
    }
    t.state = state;
    t.last = e;
    plan.applied.push(e);
    const at = isoOrNull(e.occurredAt);
    plan.events.push({
      event_id: e.eventId,
      conversation_id: id,
      seq: e.seq,
      type: e.type,
      schema_version: e.schemaVersion,
      occurred_at: at,
      causation_id: e.causationId,
      correlation_id: e.correlationId,
      traceparent: e.traceparent,
      data: e.data,
      partition: e.position.partition,
      log_offset: e.position.offset,
    });
    switch (e.type) {
      case 'ConversationStarted':
        t.prior = { ...t.prior, metadata: e.data.metadata };
        break;
      case 'PromptReceived':
        plan.messages.push(messageRow(e, at, 'user', e.data.text, null, e.data.requestId));
        break;
      case 'ReplyGenerated': {
        const row = messageRow(e, at, 'assistant', e.data.text, e.data.promptSeq, null);
        row.tokens_used = e.data.tokens.total;
        row.prompt_tokens = e.data.tokens.prompt;
        row.completion_tokens = e.data.tokens.completion;
        row.model = e.data.model;
        row.model_latency_ms = e.data.latencyMs;
        plan.messages.push(row);
        break;
      }
      case 'DataConfirmed':
        for (const [key, value] of Object.entries(e.data.data)) {
          plan.confirmed.push({ conversation_id: id, seq: e.seq, key, value: value ?? null, event_id: e.eventId, confirmed_at: at });
        }
        break;
      case 'AudioReady':
      case 'AudioFailed': {
        const k = `${id}\u0000${e.data.replySeq}`;
        const p = patches.get(k) ?? { conversation_id: id, seq: e.data.replySeq, patch: {} };
        if (e.type === 'AudioReady') {
          const { audioId, format, durationSec, bytes, voice } = e.data;
          p.patch.audio = { audioId, format, durationSec, bytes, voice, seq: e.seq };
        } else p.patch.audioError = { reason: e.data.reason, seq: e.seq };
        patches.set(k, p);
        break;
      }
      case 'ReplyStopped': {
        const heard = e.data.heardChars === null ? e.data.text : e.data.text.slice(0, e.data.heardChars);
        if (e.data.replySeq === undefined) {
          // Stopped in flight: what was generated answers the prompt, as far as it was heard.
          plan.messages.push(messageRow(e, at, 'assistant', heard, e.data.promptSeq, null));
        } else {
          const k = `${id}\u0000${e.data.replySeq}`;
          const p = patches.get(k) ?? { conversation_id: id, seq: e.data.replySeq, patch: {} };
          p.patch.stopped = { heardChars: e.data.heardChars, seq: e.seq };
          patches.set(k, p);
        }
        break;
      }
      case 'ReplyFailed':
        // Kept in `events` and seen through the failed_replies view.
        break;
      case 'SpeechReceived':
      case 'SpeechFailed':
        // Kept in `events`; the transcript is the prompt's message row that follows.
        break;
      case 'DataProposed':
        // Kept in `events`; what is still unconfirmed is in the conversation's state.
        break;
      case 'MessageSaid':
        // What a flow says is the twin's side of the transcript, like a reply.
        plan.messages.push(messageRow(e, at, 'assistant', e.data.text, null, null));
        break;
      case 'FlowStarted':
      case 'TaskStarted':
      case 'ValueRead':
      case 'BackendCalled':
      case 'FlowTransferred':
      case 'FlowEnded':
        // Kept in `events`; the flow_* views read them (migrations/003_flows.sql).
        break;
      case 'ConversationErased':
        // The fold already dropped the content from the state; apply.ts removes the rows.
        plan.erased.push({ conversation_id: id, erased_at: at });
        break;
      default: {
        const _never: never = e;
        return _never;
      }
    }
  }
  plan.patches = [...patches.values()];
  for (const [id, t] of touched) {
    const { messages: _transcript, ...s } = t.state;
    plan.conversations.push({
      id,
      twin_id: s.twin?.id ?? null,
      twin_name: s.twin?.name ?? null,
      user_id: s.userId,
      started_at: s.startedAt === null ? null : isoOrNull(s.startedAt),
      metadata: t.prior.metadata,
      state: s,
      last_seq: s.seq,
      last_event_id: s.lastEventId,
      last_event_at: isoOrNull(t.last.occurredAt),
      last_partition: t.last.position.partition,
      last_offset: t.last.position.offset,
    });
  }
  return plan;
}
