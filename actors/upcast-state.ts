import { keptMessages } from './state.ts';
import type { ConversationState, Message } from './state.ts';

/**
 * A state as an earlier version stored it: a snapshot written before the state was bounded
 * holds the whole transcript and no counters; the read model's `conversations.state` holds
 * no messages and no counters.
 */
export type StoredStateAnyVersion = Omit<ConversationState, 'prompts' | 'replies' | 'messages'> & { prompts?: number; replies?: number; messages?: Message[] };

/**
 * The state this version folds, from one stored by any version: counters taken from the
 * transcript when the stored state predates them (or from `counts`, the read model's rows,
 * when it holds no transcript), and only the messages this version keeps.
 */
export function upcastState(stored: StoredStateAnyVersion, keep: number, counts?: { prompts: number; replies: number }): ConversationState {
  const messages = stored.messages ?? [];
  const prompts = stored.prompts ?? counts?.prompts ?? messages.filter((m) => m.role === 'user').length;
  const replies = stored.replies ?? counts?.replies ?? messages.filter((m) => m.role === 'assistant').length;
  return { ...stored, prompts, replies, messages: keptMessages(messages, stored.pendingPrompts, stored.pendingAudio, keep) };
}
