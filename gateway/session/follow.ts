import { SpanKind } from '@opentelemetry/api';
import type { StreamUpdate } from '../../actors/ports.ts';
import type { Notice } from '../../events/codec.ts';
import type { EventEnvelope, LoggedEvent } from '../../events/schemas.ts';
import { contextFrom, inSpan, tracerFor } from '../../telemetry/trace.ts';
import { onChunk } from './chunks.ts';
import { echo } from './context.ts';
import type { Followed, SessionState } from './context.ts';

const tracer = tracerFor('gemello-gateway');

export const twinFields = (f: Followed) => (f.twin ? { digitalTwinId: f.twin.id, digitalTwinName: f.twin.name } : {});

/** Starts following a conversation's events and notices (or updates what is known of one already followed). */
export function follow(s: SessionState, conversationId: string, twin: { id: string; name: string } | null, verified = s.principal === null): Followed {
  let f = s.followed.get(conversationId);
  if (!f) {
    if (s.followed.size >= MAX_FOLLOWED) forgetOldest(s);
    const entry: Followed = { stop: () => {}, lastSeq: 0, twin, requests: new Map(), verified, pending: null, pendingStream: null, resuming: 0, stream: false, live: null, answered: 0, spoken: null, silenced: 0 };
    entry.stop = s.deps.feed.follow(conversationId, { event: (e) => onEvent(s, conversationId, e), notice: (n) => onNotice(s, n), stream: (u) => onStream(s, conversationId, u) });
    s.followed.set(conversationId, entry);
    f = entry;
  }
  if (twin) f.twin = twin;
  if (verified) f.verified = true;
  return f;
}

/**
 * Conversations one socket follows at most: each is a listener on the feed. Past the bound
 * the one followed longest ago with nothing under way (no command of this socket waiting
 * for its actor, no reply owed to it, no resume) is let go; the client gets its events
 * again with `resume`.
 */
export const MAX_FOLLOWED = 100;

function forgetOldest(s: SessionState): void {
  const waiting = new Set([...s.mine.values()].map((c) => c.conversationId));
  for (const [id, f] of s.followed) {
    if (f.requests.size === 0 && f.resuming === 0 && !f.live && !waiting.has(id) && ![...s.byTwin.values()].includes(id)) {
      unfollow(s, id);
      return;
    }
  }
}

/** A frame that carries neither `reply` nor `error`: only for a socket that asked for more than the seed protocol. */
const other = (s: SessionState, frame: Record<string, unknown>) => s.typed && s.out.send(frame);

/** The prompt is answered (reply, stop, failure): its live text is over for this socket. */
function answered(f: Followed, promptSeq: number): void {
  f.answered = Math.max(f.answered, promptSeq);
  if (f.live && f.live.promptSeq <= promptSeq) f.live = null;
}

/**
 * Live reply text for a socket that asked for it: `reply.delta` frames placed by `offset`,
 * without holes or repeats (what the socket has is skipped); a new generation of a reply it
 * was already shown part of (its actor host died) is announced with `reply.restart`.
 */
export function onStream(s: SessionState, conversationId: string, u: StreamUpdate): void {
  const f = s.followed.get(conversationId);
  if (!f || !f.stream || !f.verified) return;
  if (f.pending) {
    (f.pendingStream ??= []).push(u);
    return;
  }
  if (u.kind === 'audio') return onChunk(s, conversationId, f, u); // speech goes on after the reply's text
  if (u.promptSeq <= f.answered) return;
  if (u.kind === 'end') return; // the reply's event says it is over
  if (!f.live || f.live.promptSeq !== u.promptSeq || f.live.gen !== u.gen) {
    if (f.live && f.live.promptSeq === u.promptSeq && f.live.sent > 0) s.out.send({ type: 'reply.restart', conversationId, promptSeq: u.promptSeq });
    f.live = { promptSeq: u.promptSeq, gen: u.gen, sent: 0 };
  }
  if (u.kind !== 'delta') return;
  const end = u.offset + u.text.length;
  if (end <= f.live.sent) return;
  const from = Math.max(f.live.sent, u.offset);
  s.out.send({ type: 'reply.delta', conversationId, promptSeq: u.promptSeq, offset: from, text: u.text.slice(from - u.offset) });
  f.live.sent = end;
}

export function unfollow(s: SessionState, conversationId: string): void {
  s.followed.get(conversationId)?.stop();
  s.followed.delete(conversationId);
}

/**
 * What this socket's own command became, once its event is seen (live, or in what `resume`
 * read): a prompt's requestId is kept for its reply, and the command no longer waits to be
 * taken up. Another socket's requestId means nothing here: only this socket's own is echoed.
 * Returns whether the event answers a command of this socket's.
 */
export function noteOwn(s: SessionState, f: Followed, e: LoggedEvent | EventEnvelope): boolean {
  if (e.causationId === null || !s.mine.has(e.causationId)) return false;
  if (e.type !== 'PromptReceived' && e.type !== 'SpeechFailed' && e.type !== 'ReplyStopped') return true;
  s.mine.delete(e.causationId);
  if (e.type === 'PromptReceived') {
    f.requests.set(e.seq, e.data.requestId);
    f.lastPrompt = { commandId: e.causationId, requestId: e.data.requestId, answered: false };
  }
  return true;
}

/**
 * A prompt's answer read back by `resume` (not sent as a live frame): the prompt no longer waits
 * for its reply here, as when the live frame goes out.
 */
export function noteAnswered(f: Followed, e: LoggedEvent | EventEnvelope): void {
  if (e.type === 'ReplyGenerated' || e.type === 'ReplyFailed' || (e.type === 'ReplyStopped' && e.data.replySeq === undefined)) f.requests.delete(e.data.promptSeq);
  else if (e.type === 'MessageSaid') {
    for (const seq of f.requests.keys()) if (seq < e.seq) f.requests.delete(seq);
    answersLastPrompt(f, e.causationId);
  }
}

/** A live (or held back) event of a followed conversation: sent as its frame, once, in seq order. */
export function onEvent(s: SessionState, conversationId: string, e: LoggedEvent | EventEnvelope): void {
  const { out, mine, byTwin } = s;
  const f = s.followed.get(conversationId);
  if (!f) return;
  if (f.pending) {
    f.pending.push(e);
    return;
  }
  const own = e.causationId !== null && mine.has(e.causationId);
  if (!f.verified) {
    if (!own) return;
    f.verified = true; // the actor accepted this socket's command, so its principal may see the conversation
  }
  if (e.seq <= f.lastSeq) return; // the first event with a seq wins; resume and live may overlap
  f.lastSeq = e.seq;
  const requestId = (seq: number) => {
    const r = f.requests.get(seq);
    f.requests.delete(seq);
    return echo(r);
  };
  const deliver = async () => {
    switch (e.type) {
      case 'ConversationStarted':
        f.twin = { id: e.data.twinId, name: e.data.twinName };
        break;
      case 'PromptReceived':
        if (!noteOwn(s, f, e)) f.lastPrompt = undefined; // what the flow says next answers another socket's prompt
        break;
      case 'SpeechReceived':
        // What was heard, before the reply; the requestId of the utterance for the socket that spoke.
        other(s, { type: 'transcript', conversationId, seq: e.seq, text: e.data.text, audioId: e.data.audioId, durationSec: e.data.durationSec, ...(own ? echo(e.correlationId) : {}) });
        break;
      case 'SpeechFailed':
        // The socket that spoke was told when the transcriber failed; the others hear it from the log.
        if (!noteOwn(s, f, e)) out.error('stt_failed', `the utterance could not be transcribed: ${e.data.reason}`, { ...twinFields(f), conversationId, seq: e.seq, reason: e.data.code, audioId: e.data.audioId });
        break;
      case 'ReplyGenerated':
        answered(f, e.data.promptSeq);
        out.send({ type: 'reply', ...twinFields(f), conversationId, seq: e.seq, reply: e.data.text, ...requestId(e.data.promptSeq) });
        break;
      case 'ReplyFailed':
        answered(f, e.data.promptSeq);
        out.error('model_failed', e.data.reason, { ...twinFields(f), conversationId, seq: e.seq, reason: e.data.code, ...requestId(e.data.promptSeq) });
        break;
      case 'ReplyStopped':
        noteOwn(s, f, e);
        f.silenced = Math.max(f.silenced, e.data.promptSeq);
        if (e.data.replySeq === undefined) {
          answered(f, e.data.promptSeq);
          const asked = requestId(e.data.promptSeq);
          // A seed socket knows no reply.stopped: a prompt it waits on is answered with an error, never left silent.
          if (!s.typed) out.error('reply_stopped', 'the reply was stopped before it was done', { ...twinFields(f), conversationId, seq: e.seq, promptSeq: e.data.promptSeq, ...asked });
        }
        // The stop's requestId, for the socket that sent it.
        other(s, { type: 'reply.stopped', conversationId, seq: e.seq, promptSeq: e.data.promptSeq, text: e.data.text, heardChars: e.data.heardChars, ...(e.data.replySeq !== undefined ? { replySeq: e.data.replySeq } : {}), ...(own ? echo(e.correlationId) : {}) });
        break;
      case 'AudioReady':
        other(s, { type: 'audio', conversationId, seq: e.seq, replySeq: e.data.replySeq, audioUrl: `/api/audio/${e.data.audioId}`, format: e.data.format, durationSec: e.data.durationSec });
        break;
      case 'AudioFailed':
        other(s, { type: 'audio.failed', conversationId, seq: e.seq, replySeq: e.data.replySeq, reason: e.data.reason });
        break;
      case 'DataProposed':
        other(s, { type: 'data.proposed', conversationId, seq: e.seq, replySeq: e.data.replySeq, data: e.data.data });
        break;
      case 'DataConfirmed':
        break; // told by the `confirmed` notice, once its snapshot is written
      case 'MessageSaid':
        // A flow answers without a ReplyGenerated: its prompts' requestIds are not waited on.
        for (const seq of f.requests.keys()) if (seq < e.seq) f.requests.delete(seq);
        // A flow's message is the twin's reply: seed clients run a flow unchanged. Its events share the prompt's correlationId.
        // Said in answer to this socket's last prompt: caused by it, or the first message after it that a call or a timer made (the flow called its backend first).
        out.send({ type: 'reply', ...twinFields(f), conversationId, seq: e.seq, reply: e.data.text, ...(answersLastPrompt(f, e.causationId) ? echo(f.lastPrompt!.requestId) : {}) });
        break;
      case 'TaskStarted':
        other(s, { type: 'flow', conversationId, seq: e.seq, task: e.data.task, state: e.data.key ? 'calling' : 'running', taskType: e.data.taskType });
        break;
      case 'FlowTransferred':
        other(s, { type: 'flow', conversationId, seq: e.seq, task: e.data.task, state: 'transferred', to: e.data.to });
        break;
      case 'FlowEnded':
        other(s, { type: 'flow', conversationId, seq: e.seq, task: e.data.task, state: 'ended', reason: e.data.reason });
        break;
      case 'ConversationErased':
        other(s, { type: 'conversation.erased', conversationId, seq: e.seq, erasedAt: e.occurredAt });
        // Prompts without a conversationId start a new conversation from now on.
        for (const [twinId, id] of byTwin) if (id === conversationId) byTwin.delete(twinId);
        break;
    }
  };
  // Only an event that goes out as a frame gets a ws.send span, in the trace of the append that made it.
  const framed = e.type === 'SpeechReceived' || e.type === 'SpeechFailed' || e.type === 'ReplyGenerated' || e.type === 'ReplyStopped' || e.type === 'MessageSaid' || e.type === 'DataProposed' || e.type === 'ReplyFailed' || e.type === 'AudioReady' || e.type === 'AudioFailed';
  const attributes = { 'conversation.id': conversationId, 'event.seq': e.seq, 'event.type': e.type, ...(f.twin ? { 'twin.id': f.twin.id } : {}) };
  (framed ? inSpan(tracer, 'ws.send', { parent: contextFrom(e.traceparent), kind: SpanKind.PRODUCER, attributes }, deliver) : deliver())
    .catch((err) => s.deps.logger.warn(`sending event ${conversationId}/${e.seq}: ${(err as Error).message}`));
}

/** Whether a flow's message answers the socket's last prompt (each prompt is answered by its own messages, or by the first one its call or timer made). */
function answersLastPrompt(f: Followed, causationId: string | null): boolean {
  const last = f.lastPrompt;
  if (!last || (last.commandId !== causationId && (causationId !== null || last.answered))) return false;
  last.answered = true;
  return true;
}

/** A notice answers one command: only the socket that sent it hears it. */
export function onNotice(s: SessionState, n: Notice): void {
  const { out, mine, byTwin } = s;
  if (!mine.has(n.commandId)) return;
  const twinId = mine.get(n.commandId)!.twinId;
  mine.delete(n.commandId);
  const f = s.followed.get(n.conversationId);
  if (!f) return;
  const rid = echo(n.correlationId);
  if (n.type === 'rejected') {
    out.error(n.code, n.message, { ...(f.verified ? twinFields(f) : {}), conversationId: n.conversationId, ...rid });
    // Prompts without a conversationId must not keep going to a conversation that refused this twin.
    if (twinId && byTwin.get(twinId) === n.conversationId && (n.code === 'forbidden' || n.code === 'twin_mismatch' || n.code === 'conversation_erased')) byTwin.delete(twinId);
    // Let go of a conversation this socket may not see, once no other command of its to it waits for an answer.
    if (!f.verified && f.resuming === 0 && ![...mine.values()].some((c) => c.conversationId === n.conversationId)) unfollow(s, n.conversationId);
  } else if (n.type === 'confirmed') other(s, { type: 'data.confirmed', conversationId: n.conversationId, seq: n.seq, data: n.data, ...rid });
  else other(s, { type: 'erased', conversationId: n.conversationId, ...n.erasure, ...rid });
}
