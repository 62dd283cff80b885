import { isSealed, open, seal } from './seal.ts';
import type { ClientCommand, WireCommand } from '../actors/commands.ts';

const context = (cmd: { conversationId: string; commandId: string }, field: string) => `${cmd.conversationId}|${cmd.commandId}|${field}`;

/** Whether the command carries sealed content (and so needs the conversation's key to be read). */
export const isSealedCommand = (cmd: WireCommand): boolean =>
  (cmd.type === 'SubmitPrompt' && isSealed(cmd.data.text)) || (cmd.type === 'ConfirmData' && isSealed(cmd.data.data));

/** The command with its prompt text or confirmed data sealed with the conversation's key. */
export function sealCommand(cmd: ClientCommand, key: Uint8Array): WireCommand {
  if (cmd.type === 'SubmitPrompt') return { ...cmd, data: { ...cmd.data, text: seal(key, cmd.data.text, context(cmd, 'text')) } };
  if (cmd.type === 'ConfirmData') return { ...cmd, data: { ...cmd.data, data: seal(key, JSON.stringify(cmd.data.data), context(cmd, 'data')) } };
  return cmd;
}

/** The command with its content opened, or null when it cannot be (the key is gone or wrong). */
export function openCommand(cmd: WireCommand, key: Uint8Array | null | undefined): ClientCommand | null {
  if (cmd.type === 'SubmitPrompt' && isSealed(cmd.data.text)) {
    const text = key ? open(key, cmd.data.text, context(cmd, 'text')) : null;
    return text === null || text === '' ? null : { ...cmd, data: { ...cmd.data, text } };
  }
  if (cmd.type === 'ConfirmData' && isSealed(cmd.data.data)) {
    const text = key ? open(key, cmd.data.data, context(cmd, 'data')) : null;
    if (text === null) return null;
    try {
      const data = JSON.parse(text) as unknown;
      return data && typeof data === 'object' && !Array.isArray(data) ? { ...cmd, data: { ...cmd.data, data: data as Record<string, unknown> } } : null;
    } catch {
      return null;
    }
  }
  return cmd as ClientCommand;
}
