import { encodeNotice } from '../../events/codec.ts';
import { withoutContent } from '../../sealing/personal.ts';
import type { ClientCommand } from '../commands.ts';
import type { Actor, HostContext, Partition } from './context.ts';
import { silence } from './speaker.ts';
import { writeSnapshot } from './snapshot.ts';

/**
 * After ConversationErased is in the log: destroys the key (every copy of the content in
 * the log becomes unreadable), drops the snapshot and the content held in memory, then
 * tells the sender. Runs again when the command is redelivered (a crash in between), so
 * an erasure always completes.
 */
export async function completeErasure(ctx: HostContext, part: Partition, actor: Actor, cmd: ClientCommand, now: boolean): Promise<void> {
  const erased = actor.state.erased!;
  const keyDestroyed = ctx.keys ? await ctx.keys.destroy(actor.id) : false;
  actor.key = null;
  part.tail.update(actor.id, withoutContent);
  actor.traces.clear();
  actor.quiet.clear();
  if (actor.position) await writeSnapshot(ctx, actor);
  else await ctx.snapshots.delete(actor.id);
  // The live copies too: the text so far, and the clips of its last spoken sentences.
  silence(actor);
  await ctx.streams?.forget(actor.id);
  const { seq, at, by, prompts, replies, confirmedFields } = erased;
  ctx.logger.info(`erased conversation ${actor.id} at seq ${seq}${now ? '' : ' (before)'}: ${prompts} prompts, ${replies} replies, ${confirmedFields} confirmed fields`);
  await part.appender!.append([encodeNotice({
    type: 'erased', commandId: cmd.commandId, conversationId: actor.id, correlationId: cmd.correlationId,
    erasure: { seq, erasedAt: at, by, prompts, replies, confirmedFields, now, keyDestroyed },
  })]);
}
