import { randomUUID } from 'node:crypto';
import { eraseCommand } from '../actors/command-client.ts';
import type { CommandClient } from '../actors/command-client.ts';
import type { Erasure } from '../events/codec.ts';

export type EraseOutcome =
  /** The actor host destroyed the key and the snapshot; readModel: whether the projection has dropped the rows yet. */
  | { status: 'erased'; erasure: Erasure; readModel: 'scrubbed' | 'pending' }
  | { status: 'rejected'; code: string; message: string }
  /** No answer in time: the command is in the log and the conversation's actor host carries it out when it runs. */
  | { status: 'pending'; commandId: string };

export type EraserDeps = {
  commands: CommandClient;
  /** Whether the read model has applied the erasure (conversations.erased_at is set). */
  readModelErased?: (conversationId: string) => Promise<boolean>;
  /** How long to wait for the actor host, then for the read model. */
  waitMs?: number;
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `DELETE /api/conversations/:id`: asks the conversation's actor host to erase it and waits (a while) for the answer. */
export function createEraser(deps: EraserDeps) {
  const waitMs = deps.waitMs ?? 10_000;
  return async function erase(conversationId: string, principal: string | null): Promise<EraseOutcome> {
    const cmd = eraseCommand({ conversationId, commandId: randomUUID(), principal, by: principal, via: 'api', now: new Date() });
    const deadline = Date.now() + waitMs;
    const n = await deps.commands.ask(cmd, waitMs);
    const answer: EraseOutcome = n?.type === 'erased' ? { status: 'erased', erasure: n.erasure, readModel: 'pending' } : n?.type === 'rejected' ? { status: 'rejected', code: n.code, message: n.message } : { status: 'pending', commandId: cmd.commandId };
    if (answer.status !== 'erased' || !deps.readModelErased) return answer;
    while (Date.now() < deadline) {
      if (await deps.readModelErased(conversationId).catch(() => false)) return { ...answer, readModel: 'scrubbed' };
      await sleep(50);
    }
    return answer;
  };
}

export type Eraser = ReturnType<typeof createEraser>;
