import type { DomainEvent } from '../events/schemas.ts';
import { DomainError } from './commands.ts';
import type { Command } from './commands.ts';
import { MAX_PENDING_AUDIO, MAX_PENDING_PROMPTS } from './state.ts';
import type { ConversationState } from './state.ts';
import { decideFlow } from '../flows/decide.ts';
import type { FlowInput } from '../flows/decide.ts';
import type { CompiledFlow } from '../flows/compile.ts';
import type { FlowState } from '../flows/state.ts';

/** What the conversation decider knows of the deployment's flows (DESIGN §8). */
export type FlowSetting = {
  /** The current version of the flow the twin runs, if it names one. */
  forTwin(twinId: string): CompiledFlow | undefined;
  /** The version a conversation runs (the one it started with). */
  of(flow: FlowState): CompiledFlow;
  /** Seconds of silence before a noInput prompt, where the flow does not say. */
  noInputSec: number;
  /** Whether a model can read what the parsers cannot. */
  model: boolean;
};

/** Confirmed data a conversation holds at most: it is in the state and every snapshot, so it has a bound like the rest. */
export const MAX_CONFIRMED_FIELDS = 64;
export const MAX_CONFIRMED_BYTES = 8 * 1024;

/**
 * What a command does to a conversation: the events to append, or a DomainError.
 * Pure: ids, time and the sender arrive in the command; the flows the deployment runs in `flows`.
 */
export function decide(command: Command, state: ConversationState, flows: FlowSetting | null = null): DomainEvent[] {
  if (state.erased && command.type !== 'EraseConversation' && 'commandId' in command) {
    throw new DomainError('conversation_erased', `conversation ${state.conversationId} was erased; start a new one`);
  }
  switch (command.type) {
    case 'StartConversation': {
      if (state.twin) {
        if (state.twin.id === command.data.twin.id) return [];
        throw new DomainError('conversation_exists', `conversation ${state.conversationId} already talks to ${state.twin.name}`);
      }
      const flow = flows?.forTwin(command.data.twin.id);
      const first = started(command.data.twin, command.principal, command.data.metadata);
      return flow ? [first, ...decideFlow(flow, undefined, { type: 'start' }, flowContext(state, flows!, command.issuedAt, 1))] : [first];
    }
    case 'SubmitPrompt': {
      if (state.recentCommands.includes(command.commandId)) return [];
      return withSpeech(command, submitPrompt(command, state, flows));
    }
    case 'ReportSpeechFailure': {
      if (state.recentCommands.includes(command.commandId)) return [];
      const { twin, ...failure } = command.data;
      const failed: DomainEvent = { type: 'SpeechFailed', data: { ...failure, requestId: command.correlationId } };
      if (!state.twin) return [started(twin, command.principal, {}), failed];
      owned(state, command.principal);
      if (state.twin.id !== twin.id) throw new DomainError('twin_mismatch', `conversation ${state.conversationId} belongs to twin ${state.twin.id}, not ${twin.id}`);
      return [failed];
    }
    case 'ConfirmData': {
      if (state.recentCommands.includes(command.commandId)) return [];
      if (!state.twin) throw new DomainError('conversation_not_found', `conversation ${state.conversationId} does not exist`);
      owned(state, command.principal);
      const data = confirmedBy(command.data, state);
      const all = { ...state.confirmedData, ...data };
      if (Object.keys(all).length > MAX_CONFIRMED_FIELDS || JSON.stringify(all).length > MAX_CONFIRMED_BYTES) {
        throw new DomainError('invalid_data', `a conversation holds at most ${MAX_CONFIRMED_FIELDS} confirmed fields and ${MAX_CONFIRMED_BYTES} bytes of confirmed data; this confirm would go past that`);
      }
      return [{ type: 'DataConfirmed', data: { data, requestId: command.correlationId } }];
    }
    case 'StopReply': {
      if (state.recentCommands.includes(command.commandId)) return [];
      if (!state.twin) throw new DomainError('conversation_not_found', `conversation ${state.conversationId} does not exist`);
      owned(state, command.principal);
      const { heardChars, inFlight } = command.data;
      const pending = state.pendingPrompts[0];
      if (pending !== undefined) {
        // Cancelled while the model ran (inFlight: what it had said) or before it began.
        const text = inFlight && inFlight.promptSeq === pending ? inFlight.text : '';
        return [{ type: 'ReplyStopped', data: { promptSeq: pending, text, heardChars } }];
      }
      const last = state.messages.at(-1);
      if (heardChars !== null && last?.role === 'assistant') {
        // Barge-in on a reply already generated (its speech was playing): keep what was heard.
        const prompt = state.messages.findLast((m) => m.role === 'user' && m.seq < last.seq);
        const stopped: DomainEvent[] = [{ type: 'ReplyStopped', data: { promptSeq: prompt?.seq ?? last.seq, text: last.content, heardChars, replySeq: last.seq } }];
        // Its speech was still being made: it is not finished (the host stopped speaking it).
        if (state.pendingAudio.includes(last.seq)) stopped.push({ type: 'AudioFailed', data: { replySeq: last.seq, reason: 'stopped by the user while it was spoken' } });
        return stopped;
      }
      throw new DomainError('nothing_to_stop', `conversation ${state.conversationId} has no reply in flight`);
    }
    case 'EraseConversation': {
      if (!state.twin) throw new DomainError('conversation_not_found', `conversation ${state.conversationId} does not exist`);
      if (state.erased) return []; // erased before: the host only makes sure the key and snapshot are gone
      if (!command.data.asOperator) owned(state, command.principal);
      const { by, via, reason } = command.data;
      return [{
        type: 'ConversationErased',
        data: {
          by: by ?? command.principal,
          via,
          reason,
          prompts: state.prompts,
          replies: state.replies,
          confirmedFields: Object.keys(state.confirmedData).length,
        },
      }];
    }
    case 'RecordReply': {
      // Exactly one answer per prompt: an effect that finishes twice (a retry after a
      // crash, a zombie) finds the prompt no longer pending.
      if (!state.pendingPrompts.includes(command.promptSeq)) return [];
      const { type: _t, proposed, ...data } = command;
      const reply: DomainEvent = { type: 'ReplyGenerated', data };
      const events: DomainEvent[] = [reply];
      // Speech that is this far behind is not waited for: the reply says so at once.
      if (data.audio && state.pendingAudio.length >= MAX_PENDING_AUDIO) {
        events.push({ type: 'AudioFailed', data: { replySeq: state.seq + 1, reason: `speech is behind: ${state.pendingAudio.length} replies are waiting for their audio` } });
      }
      const open = openProposal(state, proposed ?? {});
      if (open) events.push({ type: 'DataProposed', data: { replySeq: state.seq + 1, data: open } });
      return events;
    }
    case 'RecordReplyFailure': {
      if (!state.pendingPrompts.includes(command.promptSeq)) return [];
      const { type: _t, ...data } = command;
      return [{ type: 'ReplyFailed', data }];
    }
    case 'RecordAudio': {
      if (!state.pendingAudio.includes(command.replySeq)) return [];
      const { type: _t, ...data } = command;
      return [{ type: 'AudioReady', data }];
    }
    case 'RecordAudioFailure': {
      if (!state.pendingAudio.includes(command.replySeq)) return [];
      return [{ type: 'AudioFailed', data: { replySeq: command.replySeq, reason: command.reason } }];
    }
    case 'RecordFlowEffect': {
      const { type: _t, at, ...outcome } = command;
      return inFlow(state, flows, { type: 'effect', ...outcome }, at);
    }
    case 'RecordFlowRead':
      return inFlow(state, flows, { type: 'read', promptSeq: command.promptSeq, value: command.value }, command.at);
    case 'FireFlowTimer':
      return inFlow(state, flows, { type: 'timer', timerSeq: command.timerSeq }, command.at);
    default: {
      const _never: never = command;
      return _never;
    }
  }
}

type SubmitPrompt = Extract<Command, { type: 'SubmitPrompt' }>;

/** What a prompt does to the conversation (typed or spoken alike). */
function submitPrompt(command: SubmitPrompt, state: ConversationState, flows: FlowSetting | null): DomainEvent[] {
  const prompt: DomainEvent = { type: 'PromptReceived', data: { text: command.data.text, requestId: command.correlationId } };
  if (!state.twin) {
    // A twin that runs a flow starts it with the first prompt, which is recorded but not read as an answer.
    const flow = flows?.forTwin(command.data.twin.id);
    const first = started(command.data.twin, command.principal, {});
    if (!flow) return [first, prompt];
    return [first, ...decideFlow(flow, undefined, { type: 'start', trigger: { text: command.data.text, requestId: command.correlationId } }, flowContext(state, flows!, command.issuedAt, 1))];
  }
  owned(state, command.principal);
  if (state.twin.id !== command.data.twin.id) {
    throw new DomainError('twin_mismatch', `conversation ${state.conversationId} belongs to twin ${state.twin.id}, not ${command.data.twin.id}`);
  }
  if (state.flow?.status === 'ended' && !state.flow.transferred) {
    // Nobody would answer: say so instead of recording a prompt. A conversation handed over keeps taking prompts, for the operator.
    throw new DomainError('flow_ended', `conversation ${state.conversationId} finished its flow (${state.flow.ended?.reason}); start a new conversation`);
  }
  const effect = state.flow?.status === 'running' ? state.flow.effect : undefined;
  if (effect) {
    // The flow reads no answer while its call is under way: say so, rather than record a prompt nobody answers.
    const what = effect.kind === 'http' ? `its call of task ${effect.task}` : `its ${effect.kind} of task ${effect.task}`;
    throw new DomainError('flow_busy', `conversation ${state.conversationId} is waiting for ${what}; the flow speaks once it is done`);
  }
  if (state.flow) return inFlow(state, flows, { type: 'text', text: command.data.text, requestId: command.correlationId }, command.issuedAt);
  if (state.pendingPrompts.length >= MAX_PENDING_PROMPTS) {
    throw new DomainError('busy', `conversation ${state.conversationId} has ${state.pendingPrompts.length} prompts waiting for their replies; send again once a reply came`);
  }
  return [prompt];
}

/**
 * A spoken prompt: its SpeechReceived (the transcript) goes just before the PromptReceived,
 * in the same append, and the prompt says it was spoken. A crash after that append leaves
 * the prompt owed like any other: the next owner answers it once (the audio is not needed).
 */
function withSpeech(command: SubmitPrompt, events: DomainEvent[]): DomainEvent[] {
  const speech = command.data.speech;
  if (!speech) return events;
  const received: DomainEvent = { type: 'SpeechReceived', data: { ...speech, text: command.data.text } };
  const at = events.findIndex((e) => e.type === 'PromptReceived');
  const marked = events.map((e) => (e.type === 'PromptReceived' ? { ...e, data: { ...e.data, source: 'voice' as const } } : e));
  const before = at >= 0 ? at : events.findIndex((e) => e.type !== 'ConversationStarted');
  const i = before >= 0 ? before : marked.length;
  return [...marked.slice(0, i), received, ...marked.slice(i)];
}

const flowContext = (state: ConversationState, flows: FlowSetting, now: string, before = 0) => ({
  conversationId: state.conversationId,
  seq: state.seq + before,
  now,
  noInputSec: flows.noInputSec,
  model: flows.model,
});

/** What an input does to the conversation's flow, on the version it started with. */
function inFlow(state: ConversationState, flows: FlowSetting | null, input: FlowInput, now: string): DomainEvent[] {
  if (!state.flow) return [];
  if (!flows) throw new DomainError('flows_unavailable', `conversation ${state.conversationId} runs flow ${state.flow.flowId}, but this host runs no flows`);
  return decideFlow(flows.of(state.flow), state.flow, input, flowContext(state, flows, now));
}

/**
 * What a confirm confirms: the data it carries, or else the open proposal, which must be
 * the one the user saw (`proposalSeq`, when given) and not one that replaced it since.
 */
function confirmedBy(command: { data: Record<string, unknown>; proposalSeq?: number | undefined }, state: ConversationState): Record<string, unknown> {
  if (Object.keys(command.data).length > 0) return command.data;
  const open = state.proposal;
  if (!open) throw new DomainError('invalid_data', 'nothing to confirm: no data was sent and none is proposed');
  if (command.proposalSeq !== undefined && command.proposalSeq !== open.seq) {
    throw new DomainError('stale_proposal', `the proposal at seq ${command.proposalSeq} is no longer open; the one at seq ${open.seq} replaced it: confirm that one`);
  }
  return open.data;
}

/**
 * The open proposal after the model read `proposed` out of the conversation, or null when
 * that changes nothing the user should hear of. A value already confirmed withdraws a
 * different one still open for its field; a new or changed value opens.
 */
function openProposal(state: ConversationState, proposed: Record<string, unknown>): Record<string, unknown> | null {
  const open: Record<string, unknown> = { ...state.proposal?.data };
  let changed = false;
  for (const [k, v] of Object.entries(proposed)) {
    if (k in state.confirmedData && sameValue(state.confirmedData[k], v)) {
      if (k in open) {
        delete open[k];
        changed = true;
      }
    } else if (!(k in open) || !sameValue(open[k], v)) {
      open[k] = v;
      changed = true;
    }
  }
  return changed ? open : null;
}

/** Equality of JSON values. */
function sameValue(a: unknown, b: unknown): boolean {
  return a === b || JSON.stringify(a) === JSON.stringify(b);
}

function started(twin: { id: string; name: string }, principal: string | null, metadata: Record<string, unknown>): DomainEvent {
  return { type: 'ConversationStarted', data: { twinId: twin.id, twinName: twin.name, userId: principal, metadata } };
}

function owned(state: ConversationState, principal: string | null): void {
  if (state.userId !== null && state.userId !== principal) {
    throw new DomainError('forbidden', `conversation ${state.conversationId} belongs to another principal`);
  }
}
