import { randomUUID } from 'node:crypto';
import type { SnapshotStore } from '../actors/ports.ts';
import { createCommandClient, eraseCommand } from '../actors/command-client.ts';
import { partitionFor } from '../log/partition.ts';
import type { EventLog } from '../log/port.ts';
import type { Db } from '../stores/sql.ts';
import type { Progress } from './progress.ts';
import { inLog } from './read-conversation.ts';
import { plural } from './wording.ts';

export type EraseDeps = {
  log: EventLog;
  db: Db;
  snapshots: SnapshotStore;
  /** What was erased (stdout). */
  out?: (line: string) => void;
  /** Waiting and problems (stderr). */
  say?: (line: string) => void;
  progress?: Progress;
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * `gemello erase <id>`: asks the conversation's actor host (the one writer of its log) to
 * erase it, through gemello.commands like any client, and waits until it is done: the
 * ConversationErased event appended, the key destroyed, the snapshot deleted; then until the
 * read model has dropped the rows. Returns the exit code: 0 done, 1 refused (or no such
 * conversation: then nothing is sent), 3 no actor host answered in time (the command stays
 * queued and is carried out when one runs).
 */
export async function eraseConversation(
  conversationId: string,
  options: { by: string | null; reason?: string | null; timeoutMs?: number },
  deps: EraseDeps,
): Promise<number> {
  const out = deps.out ?? ((l: string) => console.log(l));
  const say = deps.say ?? ((l: string) => console.error(l));
  const timeoutMs = options.timeoutMs ?? 30_000;
  const partition = partitionFor(conversationId, deps.log.partitions);
  // A mistyped id must not leave a command queued for a host to refuse later: the read model
  // answers at once for a conversation it holds, the log (the truth) for the rest.
  const [row] = await deps.db.query('SELECT 1 FROM conversations WHERE id = $1', [conversationId]).catch(() => []);
  if (!row && !(await inLog(deps.log, conversationId, deps.progress))) {
    say(`no conversation ${conversationId} in the log (partition ${partition}): nothing to erase. Check the id (gemello events <id> shows a conversation's events).`);
    return 1;
  }
  const cmd = eraseCommand({ conversationId, commandId: randomUUID(), principal: null, by: options.by, via: 'cli', reason: options.reason ?? null, now: new Date() });
  say(`erasure of ${conversationId} requested (command ${cmd.commandId}, partition ${partition}); waiting for its actor host…`);
  const deadline = Date.now() + timeoutMs;
  // No feed here: the answer is read from the conversation's partition of the log.
  const n = await createCommandClient({ log: deps.log }).ask(cmd, timeoutMs);
  if (!n) {
    say(`no actor host answered within ${Math.round(timeoutMs / 1000)} s. The command stays in gemello.commands and is carried out when the conversation's actor host runs (gemello actors, or npm start); run this command again to see the result.`);
    return 3;
  }
  if (n.type === 'rejected') {
    say(`not erased: ${n.message} (${n.code})`);
    return 1;
  }
  if (n.type !== 'erased') throw new Error(`unexpected answer ${n.type} to the erasure`);
  const e = n.erasure;

  // The projection drops the rows when it reaches the event.
  let erasedAt: string | null = null;
  while (Date.now() < deadline) {
    const [row] = await deps.db.query<{ erased_at: Date | string | null }>('SELECT erased_at FROM conversations WHERE id = $1', [conversationId]).catch(() => []);
    if (row?.erased_at) {
      erasedAt = new Date(row.erased_at).toISOString();
      break;
    }
    await sleep(100);
  }
  const snapshot = await deps.snapshots.get(conversationId).catch(() => null);

  out(e.now ? `erased conversation ${conversationId}` : `conversation ${conversationId} was already erased; checked that nothing readable is left`);
  out(`  event       ConversationErased, seq ${e.seq}, at ${e.erasedAt}${e.by ? `, by ${e.by}` : ''}`);
  out(`  content     ${plural(e.prompts, 'prompt')}, ${plural(e.replies, 'reply', 'replies')}, ${plural(e.confirmedFields, 'confirmed field')}: their copies in the log are sealed with a key that no longer exists`);
  // keyDestroyed: this erasure's tombstone destroyed the key (false: an earlier one's did).
  out(`  key         ${e.keyDestroyed ? 'destroyed' : 'already destroyed'}`);
  out(`  snapshot    ${snapshot ? 'STILL PRESENT (run gemello verify)' : 'none'}`);
  out(`  read model  ${erasedAt ? `messages, confirmed data and event content removed (erased_at ${erasedAt})` : 'not yet: the projection removes the rows when it reaches the event (is gemello projections running?)'}`);
  return snapshot ? 1 : 0;
}
