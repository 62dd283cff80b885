import type { EventEnvelope } from '../events/schemas.ts';
import { evolveFlow } from '../flows/state.ts';
import type { FlowState } from '../flows/state.ts';

export type Message = { seq: number; role: 'user' | 'assistant'; content: string };

/** A conversation as the fold of its events. */
export type ConversationState = {
  conversationId: string;
  /** The seq of the last event applied; 0 before the first. */
  seq: number;
  lastEventId: string | null;
  twin: { id: string; name: string } | null;
  userId: string | null;
  startedAt: string | null;
  /**
   * The most recent messages only (see keptMessages): what the model sees with a prompt and
   * what speech reads. The transcript is the log's, and the read model's `messages` rows.
   */
  messages: Message[];
  /** Prompts and replies so far (the transcript's length, which the state no longer holds). */
  prompts: number;
  replies: number;
  confirmedData: Record<string, unknown>;
  /**
   * The values the model proposed for the twin's fields that the user has not confirmed
   * yet, and the seq of the DataProposed that showed them (absent when none are open). A
   * confirm without data confirms these.
   */
  proposal?: { seq: number; data: Record<string, unknown> };
  /** Prompts (by seq) whose reply is still owed, oldest first: durable work. */
  pendingPrompts: number[];
  /** Replies (by seq) whose audio is still owed. */
  pendingAudio: number[];
  failedReplies: number;
  /** Recently handled command ids, so a command delivered twice is applied once. */
  recentCommands: string[];
  /** The flow the conversation runs (its twin names one): where it is, its memory, its data node's dialogue. */
  flow?: FlowState;
  /** Set once the conversation was erased: its content is gone and it takes no more commands. */
  erased?: { seq: number; at: string; by: string | null; prompts: number; replies: number; confirmedFields: number };
};

export const RECENT_COMMANDS = 64;
/** Messages kept by default (GEMELLO_HISTORY_MESSAGES): the model's context window. */
export const HISTORY_MESSAGES = 40;
/**
 * Prompts a conversation may have waiting for their reply; one more is refused (`busy`).
 * Pending work is part of the state and of the snapshot, so it has a bound like the rest.
 */
export const MAX_PENDING_PROMPTS = 16;
/** Replies waiting for their speech; the reply beyond gets AudioFailed at once. */
export const MAX_PENDING_AUDIO = 8;
/** Messages kept beyond `keep` for pending work (a reply whose speech is owed, prompts in line), at most. */
const PENDING_SLACK = MAX_PENDING_PROMPTS + 2 * MAX_PENDING_AUDIO;

export const initialState = (conversationId: string): ConversationState => ({
  conversationId,
  seq: 0,
  lastEventId: null,
  twin: null,
  userId: null,
  startedAt: null,
  messages: [],
  prompts: 0,
  replies: 0,
  confirmedData: {},
  pendingPrompts: [],
  pendingAudio: [],
  failedReplies: 0,
  recentCommands: [],
});

/** Thrown when events do not follow each other (a gap in seq). */
export class SeqGap extends Error {
  readonly code = 'seq_gap';
}

/**
 * Applies one event. The log rule every reader follows: the first event with a given
 * seq wins; a later one with a seq already applied (a fenced zombie's write, a
 * redelivery) is ignored; a seq that skips ahead is a gap and an error.
 * The text of PromptReceived, ReplyGenerated and MessageSaid is only copied into a message
 * here: a replay folds it still sealed and opens the messages kept (OPENED_AT_THE_END in
 * actors/replay-fold.ts); a case that reads or moves it elsewhere takes its type out of that set.
 */
export function evolve(state: ConversationState, event: EventEnvelope, keep = HISTORY_MESSAGES): ConversationState {
  if (event.seq <= state.seq) return state;
  if (event.seq !== state.seq + 1) {
    throw new SeqGap(`conversation ${state.conversationId}: expected seq ${state.seq + 1}, got ${event.seq}`);
  }
  // This call's own copy: the cases below set its fields (all of them the state's already, so
  // the order of its keys is the state's) rather than copying it again (a fold makes one an
  // event, a replay or a projector's catch-up millions).
  const next: ConversationState = { ...state, seq: event.seq, lastEventId: event.eventId };
  if (event.causationId && !state.recentCommands.includes(event.causationId)) {
    next.recentCommands = appended(state.recentCommands, event.causationId, RECENT_COMMANDS);
  }
  switch (event.type) {
    case 'ConversationStarted':
      next.twin = { id: event.data.twinId, name: event.data.twinName };
      next.userId = event.data.userId;
      next.startedAt = event.occurredAt;
      return next;
    case 'PromptReceived':
    {
      // In a flow, the flow answers (flows/decide.ts), not the model's reply.
      const pendingPrompts = state.flow ? state.pendingPrompts : appended(state.pendingPrompts, event.seq, Infinity);
      const n = withFlow(next, state.flow, event);
      n.messages = keptWith(state.messages, { seq: event.seq, role: 'user', content: event.data.text }, pendingPrompts, state.pendingAudio, keep);
      n.prompts = state.prompts + 1;
      n.pendingPrompts = pendingPrompts;
      return n;
    }
    case 'DataConfirmed':
      // A confirmed field is settled, whatever value the model had proposed for it.
      return withProposal(
        { ...withFlow(next, state.flow, event), confirmedData: { ...state.confirmedData, ...event.data.data } },
        state.proposal ? { seq: state.proposal.seq, data: Object.fromEntries(Object.entries(state.proposal.data).filter(([k]) => !(k in event.data.data))) } : undefined,
      );
    case 'DataProposed':
      // It holds every open proposal: what it shows replaces what was open.
      return withProposal(next, { seq: event.seq, data: event.data.data });
    case 'ReplyGenerated':
    {
      const pendingPrompts = state.pendingPrompts.filter((s) => s !== event.data.promptSeq);
      const pendingAudio = event.data.audio ? appended(state.pendingAudio, event.seq, Infinity) : state.pendingAudio;
      next.messages = keptWith(state.messages, { seq: event.seq, role: 'assistant', content: event.data.text }, pendingPrompts, pendingAudio, keep);
      next.replies = state.replies + 1;
      next.pendingPrompts = pendingPrompts;
      next.pendingAudio = pendingAudio;
      return next;
    }
    case 'ReplyStopped': {
      // The history the model sees next holds what the user heard, not what was generated.
      const { promptSeq, text, heardChars, replySeq } = event.data;
      const heard = heardChars === null ? text : text.slice(0, heardChars);
      if (replySeq !== undefined) {
        return { ...next, messages: state.messages.map((m) => (m.seq === replySeq ? { ...m, content: heard } : m)) };
      }
      const pendingPrompts = state.pendingPrompts.filter((s) => s !== promptSeq);
      return {
        ...next,
        messages: heard ? keptWith(state.messages, { seq: event.seq, role: 'assistant', content: heard }, pendingPrompts, state.pendingAudio, keep) : state.messages,
        replies: state.replies + (heard ? 1 : 0),
        pendingPrompts,
      };
    }
    case 'ReplyFailed':
      next.pendingPrompts = state.pendingPrompts.filter((s) => s !== event.data.promptSeq);
      next.failedReplies = state.failedReplies + 1;
      return next;
    case 'SpeechReceived':
    case 'SpeechFailed':
      // The transcript is the PromptReceived that follows; a failed utterance owes nothing.
      return next;
    case 'AudioReady':
    case 'AudioFailed':
      next.pendingAudio = state.pendingAudio.filter((s) => s !== event.data.replySeq);
      return next;
    case 'MessageSaid': {
      const n = withFlow(next, state.flow, event);
      n.messages = keptWith(state.messages, { seq: event.seq, role: 'assistant', content: event.data.text }, state.pendingPrompts, state.pendingAudio, keep);
      n.replies = state.replies + 1;
      return n;
    }
    case 'FlowStarted':
    case 'TaskStarted':
    case 'ValueRead':
    case 'BackendCalled':
    case 'FlowTransferred':
    case 'FlowEnded':
      return withFlow(next, state.flow, event);
    case 'ConversationErased':
      // Nothing personal survives in the state (the flow's memory neither), and no reply or audio is still owed.
      return { ...withProposal(next, undefined), ...(state.flow ? { flow: erasedFlow(state.flow, event.occurredAt) } : {}), messages: [], confirmedData: {}, pendingPrompts: [], pendingAudio: [], erased: { seq: event.seq, at: event.occurredAt, by: event.data.by, prompts: event.data.prompts, replies: event.data.replies, confirmedFields: event.data.confirmedFields } };
    default: {
      const _never: never = event;
      return _never;
    }
  }
}

/** `list` with `x` at its end, its oldest left out beyond `max`: one new array (the fold makes one an event, a replay or a projector's catch-up millions). */
function appended<T>(list: readonly T[], x: T, max: number): T[] {
  const from = Math.max(0, list.length + 1 - max);
  const out = new Array<T>(list.length - from + 1);
  for (let i = from; i < list.length; i++) out[i - from] = list[i]!;
  out[out.length - 1] = x;
  return out;
}

/**
 * A flow without what the user said (its memory, the value its node was confirming), and over:
 * an erased conversation owes nothing (a call made again after a restart would send the backend
 * a customer of nulls; a timer would speak to nobody).
 */
function erasedFlow(flow: FlowState, at: string): FlowState {
  const { node: _n, effect: _e, timer: _t, read: _r, ...rest } = flow;
  return { ...rest, memory: {}, ...(flow.status === 'running' ? { status: 'ended' as const, ended: { reason: 'erased', at, task: flow.task } } : {}) };
}

/** The state with its flow moved on by a flow event (or a prompt or confirmation in a flow): `state` itself or a new copy of it. */
function withFlow(state: ConversationState, flow: FlowState | undefined, event: EventEnvelope & { type: Parameters<typeof evolveFlow>[1]['type'] }): ConversationState {
  const f = evolveFlow(flow, event as Parameters<typeof evolveFlow>[1], { seq: event.seq, at: event.occurredAt });
  return f ? { ...state, flow: f } : state;
}

/** The state with `proposal` open, or without the field when it holds nothing. */
function withProposal(state: ConversationState, proposal: ConversationState['proposal']): ConversationState {
  const { proposal: _old, ...rest } = state;
  return proposal && Object.keys(proposal.data).length > 0 ? { ...rest, proposal } : rest;
}

/**
 * The messages a state keeps: the last `keep`, and further back what pending work still
 * needs: the `keep` messages up to the oldest prompt waiting for its reply (the model's
 * history for it) and the oldest reply waiting for its speech (its text). Never more than
 * `keep` plus a fixed slack, so the state's size does not follow the conversation's length.
 * `keep` = Infinity keeps the whole transcript (`gemello state --at`).
 */
export function keptMessages(messages: Message[], pendingPrompts: readonly number[], pendingAudio: readonly number[], keep: number): Message[] {
  if (messages.length <= keep) return messages;
  const last = messages.length - keep;
  const prompt = pendingPrompts[0];
  const audio = pendingAudio[0];
  if (prompt === undefined && audio === undefined) return messages.slice(last);
  const lowest = Math.max(0, last - PENDING_SLACK);
  let from = last;
  for (let i = lowest; i < messages.length; i++) {
    const seq = messages[i]!.seq;
    if (seq === audio) from = Math.min(from, i);
    if (seq === prompt) from = Math.min(from, Math.max(lowest, i - keep + 1));
  }
  return messages.slice(from);
}

/** `keptMessages([...messages, m], …)`, made as one array: the messages a state keeps once `m` is added. */
export function keptWith(messages: readonly Message[], m: Message, pendingPrompts: readonly number[], pendingAudio: readonly number[], keep: number): Message[] {
  const n = messages.length + 1;
  let from = 0;
  if (n > keep) {
    // keptMessages over the list with `m` at its end, without making that list.
    const last = n - keep;
    const prompt = pendingPrompts[0];
    const audio = pendingAudio[0];
    from = last;
    if (prompt !== undefined || audio !== undefined) {
      const lowest = Math.max(0, last - PENDING_SLACK);
      for (let i = lowest; i < n; i++) {
        const seq = i < messages.length ? messages[i]!.seq : m.seq;
        if (seq === audio) from = Math.min(from, i);
        if (seq === prompt) from = Math.min(from, Math.max(lowest, i - keep + 1));
      }
    }
  }
  const out = new Array<Message>(n - from);
  for (let i = from; i < messages.length; i++) out[i - from] = messages[i]!;
  if (from < n) out[n - 1 - from] = m;
  return out;
}

/** The state after `events`, from `state` (the initial state by default), keeping `keep` messages (see keptMessages). */
export function fold(conversationId: string, events: Iterable<EventEnvelope>, state = initialState(conversationId), keep = HISTORY_MESSAGES): ConversationState {
  let s = state;
  for (const e of events) s = evolve(s, e, keep);
  return s;
}
