import { partitionFor } from '../log/partition.ts';
import type { EventLog } from '../log/port.ts';
import { TOPICS } from '../log/port.ts';
import type { ClientCommand, WireCommand } from './commands.ts';

/** Appends a command to `gemello.commands`, on its conversation's partition; resolves with its offset. */
export function publishCommand(log: EventLog, cmd: WireCommand): Promise<number> {
  const headers: Record<string, string> = { 'command-type': cmd.type };
  if (cmd.traceparent) headers.traceparent = cmd.traceparent;
  return log.append(TOPICS.commands, partitionFor(cmd.conversationId, log.partitions), [{ key: cmd.conversationId, value: JSON.stringify(cmd), headers }]);
}

/** An EraseConversation command: from a client through the API (its principal must own the conversation) or from the operator's CLI. */
export function eraseCommand(input: { conversationId: string; commandId: string; principal: string | null; by: string | null; via: 'api' | 'cli'; reason?: string | null; now: Date }): ClientCommand {
  return {
    type: 'EraseConversation',
    commandId: input.commandId,
    conversationId: input.conversationId,
    correlationId: null,
    principal: input.principal,
    traceparent: null,
    issuedAt: input.now.toISOString(),
    data: { by: input.by, via: input.via, reason: input.reason ?? null, asOperator: input.via === 'cli' },
  };
}
