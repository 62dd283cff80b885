import { partitionFor } from '../../log/partition.ts';
import { TOPICS } from '../../log/port.ts';
import type { ErrorCode, ResumeFrame } from '../protocol.ts';
import { echo } from './context.ts';
import type { Conversation, SessionState } from './context.ts';
import { speechOver } from './chunks.ts';
import { follow, noteAnswered, noteOwn, onEvent, onStream, twinFields, unfollow } from './follow.ts';
import type { LoggedEvent } from '../../events/schemas.ts';

/** A resume that cannot be served, with the code the client gets. */
class ResumeRefused extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Waits until the read model holds everything the log had for the conversation's partition at
 * the call; returns that end offset (null: no read model progress to wait for).
 */
async function caughtUp(s: SessionState, conversationId: string): Promise<number | null> {
  const { deps } = s;
  if (!deps.projectedUntil) return null;
  const partition = partitionFor(conversationId, deps.log.partitions);
  const end = (await deps.log.endOffsets(TOPICS.events))[partition] ?? 0;
  const deadline = Date.now() + deps.limits.resumeWaitMs;
  while (((await deps.projectedUntil(partition)) ?? 0) < end) {
    if (s.out.closed) return end;
    if (Date.now() > deadline) throw new ResumeRefused('unavailable', 'the read model is behind the log; send resume again');
    await sleep(20);
  }
  return end;
}

/** `{"type":"resume"}`: the conversation's events after `afterSeq`, in order, then live ones. */
export async function resume(s: SessionState, frame: ResumeFrame): Promise<void> {
  const { deps, out } = s;
  const id = frame.conversationId;
  const rid = echo(frame.requestId);
  if (!deps.eventsAfter) {
    out.error('unavailable', 'resume needs the read model, which this process does not have', { conversationId: id, ...rid });
    return;
  }
  // Follow first (holding live events back), then make sure the read model has caught up
  // with the log, then read it: an event is either in the log before the follow began, and
  // so in what is read, or it comes live after it. Both paths may carry the same event; it
  // is sent once, in seq order.
  const known = s.followed.has(id);
  const f = follow(s, id, null);
  f.resuming++;
  f.pending ??= [];
  // A socket that resumes gets the reply in flight too: the text so far, then the rest live.
  f.stream = true;
  try {
    // What the log held when the resume began is read back; what came after comes live (held
    // back since the follow began), as the frames a live event makes: a prompt this socket sent
    // right after its resume gets its reply with its requestId, not as a bare event.
    const end = await caughtUp(s, id);
    let row: Promise<Conversation | null> | null = null;
    const conversation = () => (row ??= deps.conversationOf ? deps.conversationOf(id) : Promise.resolve(null));
    if (!f.verified || !f.twin) {
      // The twin too: a client resuming after seq 1 is not sent ConversationStarted, yet
      // its replies name the twin.
      const c = await conversation();
      if (!f.verified) {
        if (!c) throw new ResumeRefused('conversation_not_found', `no conversation ${id}`);
        if (c.owner !== null && c.owner !== s.principal) throw new ResumeRefused('forbidden', `conversation ${id} belongs to another principal`);
        f.verified = true;
      }
      f.twin ??= c?.twin ?? null;
    }
    // The client names what it has: everything after afterSeq, even what this socket was sent live.
    let after = frame.afterSeq;
    const speech = speechOver();
    let live = false;
    while (!live) {
      const page = await deps.eventsAfter(id, after);
      const fresh = page.filter((e) => e.seq > after);
      if (!fresh.length || out.closed) break;
      for (const e of fresh) {
        if (e.seq <= after) continue;
        const offset = (e as Partial<LoggedEvent>).position?.offset;
        if (end !== null && offset !== undefined && offset >= end) {
          live = true;
          break;
        }
        noteOwn(s, f, e);
        noteAnswered(f, e);
        if (e.type === 'ConversationStarted') f.twin = { id: e.data.twinId, name: e.data.twinName };
        speech.saw(e);
        if (e.type === 'ReplyStopped') f.silenced = Math.max(f.silenced, e.data.promptSeq);
        if (e.type === 'ReplyGenerated' || e.type === 'ReplyFailed' || (e.type === 'ReplyStopped' && e.data.replySeq === undefined)) f.answered = Math.max(f.answered, e.data.promptSeq);
        out.send({ type: 'event', conversationId: id, seq: e.seq, event: e.type, occurredAt: e.occurredAt, data: e.data });
        after = e.seq;
      }
    }
    // A client that names a seq the conversation has not reached yet (an old or a wrong
    // one) still gets the events that come: only what the read model holds counts as had.
    if (after === frame.afterSeq && after > f.lastSeq) after = Math.min(after, (await conversation())?.lastSeq ?? 0);
    f.lastSeq = Math.max(f.lastSeq, after);
    out.send({ type: 'resumed', conversationId: id, lastSeq: f.lastSeq, ...twinFields(f), ...rid });
    // Live updates are held back since the follow began, so none is lost between this read and them; those it covers are skipped by offset.
    const streaming = await deps.feed.streamed(id).catch(() => null);
    if (streaming && streaming.promptSeq > f.answered) {
      f.live = { promptSeq: streaming.promptSeq, gen: streaming.gen, sent: streaming.text.length };
      if (streaming.text) out.send({ type: 'reply.delta', conversationId: id, promptSeq: streaming.promptSeq, offset: 0, text: streaming.text });
    }
    // The sentences of the reply being spoken so far, then the rest live (a reply's speech outlasts its text).
    speech.send(s, id, f, await deps.feed.chunks(id).catch(() => []));
  } catch (err) {
    if (!(err instanceof ResumeRefused)) throw err;
    out.error(err.code, err.message, { conversationId: id, ...rid });
  } finally {
    f.resuming--;
    if (f.resuming === 0) {
      const held = (f.pending ?? []).sort((a, b) => a.seq - b.seq);
      const heldStream = f.pendingStream ?? [];
      f.pending = null;
      f.pendingStream = null;
      for (const e of held) onEvent(s, id, e);
      for (const u of heldStream) onStream(s, id, u);
      if (!known && !f.verified) unfollow(s, id);
    }
  }
}
