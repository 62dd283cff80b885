import type { DomainEvent } from '../events/schemas.ts';
import { DomainError } from './commands.ts';
import type { Command } from './commands.ts';
import { sameValue } from './state.ts';
import type { ConversationState } from './state.ts';

/**
 * What a command does to a conversation: the events to append, or a DomainError.
 * Pure: ids, time and the sender arrive in the command.
 */
export function decide(command: Command, state: ConversationState): DomainEvent[] {
  if (state.erased && command.type !== 'EraseConversation' && 'commandId' in command) {
    throw new DomainError('conversation_erased', `conversation ${state.conversationId} was erased; start a new one`);
  }
  switch (command.type) {
    case 'StartConversation': {
      if (state.twin) {
        if (state.twin.id === command.data.twin.id) return [];
        throw new DomainError('conversation_exists', `conversation ${state.conversationId} already talks to ${state.twin.name}`);
      }
      return [started(command.data.twin, command.principal, command.data.metadata)];
    }
    case 'SubmitPrompt': {
      if (state.recentCommands.includes(command.commandId)) return [];
      const prompt: DomainEvent = { type: 'PromptReceived', data: { text: command.data.text, requestId: command.correlationId } };
      if (!state.twin) return [started(command.data.twin, command.principal, {}), prompt];
      owned(state, command.principal);
      if (state.twin.id !== command.data.twin.id) {
        throw new DomainError('twin_mismatch', `conversation ${state.conversationId} belongs to twin ${state.twin.id}, not ${command.data.twin.id}`);
      }
      return [prompt];
    }
    case 'ConfirmData': {
      if (state.recentCommands.includes(command.commandId)) return [];
      if (!state.twin) throw new DomainError('conversation_not_found', `conversation ${state.conversationId} does not exist`);
      owned(state, command.principal);
      // No data: the user confirms what the model proposed.
      const data = Object.keys(command.data.data).length > 0 ? command.data.data : (state.proposedData ?? {});
      if (Object.keys(data).length === 0) throw new DomainError('invalid_data', 'nothing to confirm: no data was sent and none is proposed');
      return [{ type: 'DataConfirmed', data: { data, requestId: command.correlationId } }];
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
          prompts: state.messages.filter((m) => m.role === 'user').length,
          replies: state.messages.filter((m) => m.role === 'assistant').length,
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
      // Only what would tell the user something new: not what is confirmed or proposed already.
      const fresh = Object.entries(proposed ?? {}).filter(([k, v]) =>
        !(k in state.confirmedData && sameValue(state.confirmedData[k], v)) && !(state.proposedData && k in state.proposedData && sameValue(state.proposedData[k], v)));
      if (fresh.length === 0) return [reply];
      return [reply, { type: 'DataProposed', data: { replySeq: state.seq + 1, data: Object.fromEntries(fresh) } }];
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
    default: {
      const _never: never = command;
      return _never;
    }
  }
}

function started(twin: { id: string; name: string }, principal: string | null, metadata: Record<string, unknown>): DomainEvent {
  return { type: 'ConversationStarted', data: { twinId: twin.id, twinName: twin.name, userId: principal, metadata } };
}

function owned(state: ConversationState, principal: string | null): void {
  if (state.userId !== null && state.userId !== principal) {
    throw new DomainError('forbidden', `conversation ${state.conversationId} belongs to another principal`);
  }
}
