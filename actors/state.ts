import type { EventEnvelope } from '../events/schemas.ts';

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
  messages: Message[];
  confirmedData: Record<string, unknown>;
  /**
   * Values the model proposed for the twin's fields and the user has not confirmed yet
   * (absent when there are none). A confirm without data confirms these.
   */
  proposedData?: Record<string, unknown>;
  /** Prompts (by seq) whose reply is still owed, oldest first: durable work. */
  pendingPrompts: number[];
  /** Replies (by seq) whose audio is still owed. */
  pendingAudio: number[];
  failedReplies: number;
  /** Recently handled command ids, so a command delivered twice is applied once. */
  recentCommands: string[];
  /** Set once the conversation was erased: its content is gone and it takes no more commands. */
  erased?: { seq: number; at: string; by: string | null; prompts: number; replies: number; confirmedFields: number };
};

export const RECENT_COMMANDS = 64;

export const initialState = (conversationId: string): ConversationState => ({
  conversationId,
  seq: 0,
  lastEventId: null,
  twin: null,
  userId: null,
  startedAt: null,
  messages: [],
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
 */
export function evolve(state: ConversationState, event: EventEnvelope): ConversationState {
  if (event.seq <= state.seq) return state;
  if (event.seq !== state.seq + 1) {
    throw new SeqGap(`conversation ${state.conversationId}: expected seq ${state.seq + 1}, got ${event.seq}`);
  }
  const next: ConversationState = { ...state, seq: event.seq, lastEventId: event.eventId };
  if (event.causationId && !state.recentCommands.includes(event.causationId)) {
    next.recentCommands = [...state.recentCommands, event.causationId].slice(-RECENT_COMMANDS);
  }
  switch (event.type) {
    case 'ConversationStarted':
      return { ...next, twin: { id: event.data.twinId, name: event.data.twinName }, userId: event.data.userId, startedAt: event.occurredAt };
    case 'PromptReceived':
      return {
        ...next,
        messages: [...state.messages, { seq: event.seq, role: 'user', content: event.data.text }],
        pendingPrompts: [...state.pendingPrompts, event.seq],
      };
    case 'DataConfirmed':
      // A confirmed field is settled, whatever value the model had proposed for it.
      return withProposals({ ...next, confirmedData: { ...state.confirmedData, ...event.data.data } }, Object.entries(state.proposedData ?? {}).filter(([k]) => !(k in event.data.data)));
    case 'DataProposed':
      // A proposal of what is already confirmed asks nothing of the user.
      return withProposals(next, Object.entries({ ...state.proposedData, ...event.data.data }).filter(([k, v]) => !(k in state.confirmedData) || !sameValue(state.confirmedData[k], v)));
    case 'ReplyGenerated':
      return {
        ...next,
        messages: [...state.messages, { seq: event.seq, role: 'assistant', content: event.data.text }],
        pendingPrompts: state.pendingPrompts.filter((s) => s !== event.data.promptSeq),
        pendingAudio: event.data.audio ? [...state.pendingAudio, event.seq] : state.pendingAudio,
      };
    case 'ReplyFailed':
      return {
        ...next,
        pendingPrompts: state.pendingPrompts.filter((s) => s !== event.data.promptSeq),
        failedReplies: state.failedReplies + 1,
      };
    case 'AudioReady':
    case 'AudioFailed':
      return { ...next, pendingAudio: state.pendingAudio.filter((s) => s !== event.data.replySeq) };
    case 'ConversationErased':
      // Nothing personal survives in the state, and no reply or audio is still owed.
      return { ...withProposals(next, []), messages: [], confirmedData: {}, pendingPrompts: [], pendingAudio: [], erased: { seq: event.seq, at: event.occurredAt, by: event.data.by, prompts: event.data.prompts, replies: event.data.replies, confirmedFields: event.data.confirmedFields } };
    default: {
      const _never: never = event;
      return _never;
    }
  }
}

/** The state with `open` as its open proposals (none: no proposedData field). */
function withProposals(state: ConversationState, open: [string, unknown][]): ConversationState {
  const { proposedData: _old, ...rest } = state;
  return open.length > 0 ? { ...rest, proposedData: Object.fromEntries(open) } : rest;
}

/** Equality of JSON values. */
export function sameValue(a: unknown, b: unknown): boolean {
  return a === b || JSON.stringify(a) === JSON.stringify(b);
}

/** The state after `events`, from `state` (the initial state by default). */
export function fold(conversationId: string, events: Iterable<EventEnvelope>, state = initialState(conversationId)): ConversationState {
  let s = state;
  for (const e of events) s = evolve(s, e);
  return s;
}
