import { SpanKind } from '@opentelemetry/api';
import type { Notice } from '../../events/codec.ts';
import type { EventEnvelope, LoggedEvent } from '../../events/schemas.ts';
import { contextFrom, inSpan, tracerFor } from '../../telemetry/trace.ts';
import { echo } from './context.ts';
import type { Followed, SessionState } from './context.ts';

const tracer = tracerFor('gemello-gateway');

export const twinFields = (f: Followed) => (f.twin ? { digitalTwinId: f.twin.id, digitalTwinName: f.twin.name } : {});

/** Starts following a conversation's events and notices (or updates what is known of one already followed). */
export function follow(s: SessionState, conversationId: string, twin: { id: string; name: string } | null, verified = s.principal === null): Followed {
  let f = s.followed.get(conversationId);
  if (!f) {
    if (s.followed.size >= MAX_FOLLOWED) forgetOldest(s);
    const entry: Followed = { stop: () => {}, lastSeq: 0, twin, requests: new Map(), verified, pending: null, resuming: 0 };
    entry.stop = s.deps.feed.follow(conversationId, { event: (e) => onEvent(s, conversationId, e), notice: (n) => onNotice(s, n) });
    s.followed.set(conversationId, entry);
    f = entry;
  }
  if (twin) f.twin = twin;
  if (verified) f.verified = true;
  return f;
}

/**
 * Conversations one socket follows at most: each is a listener on the feed. Past the bound
 * the one followed longest ago with nothing under way (no reply owed to this socket, no
 * resume) is let go; the client gets its events again with `resume`.
 */
export const MAX_FOLLOWED = 100;

function forgetOldest(s: SessionState): void {
  for (const [id, f] of s.followed) {
    if (f.requests.size === 0 && f.resuming === 0 && ![...s.byTwin.values()].includes(id)) {
      unfollow(s, id);
      return;
    }
  }
}

export function unfollow(s: SessionState, conversationId: string): void {
  s.followed.get(conversationId)?.stop();
  s.followed.delete(conversationId);
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
        // Another socket's requestId means nothing here: echo only this socket's own.
        if (own) {
          f.requests.set(e.seq, e.data.requestId);
          mine.delete(e.causationId!);
          f.lastPrompt = { commandId: e.causationId!, requestId: e.data.requestId };
        }
        break;
      case 'ReplyGenerated':
        out.send({ type: 'reply', ...twinFields(f), conversationId, seq: e.seq, reply: e.data.text, ...requestId(e.data.promptSeq) });
        break;
      case 'ReplyFailed':
        out.error('model_failed', e.data.reason, { ...twinFields(f), conversationId, seq: e.seq, reason: e.data.code, ...requestId(e.data.promptSeq) });
        break;
      case 'AudioReady':
        out.send({ type: 'audio', conversationId, seq: e.seq, replySeq: e.data.replySeq, audioUrl: `/api/audio/${e.data.audioId}`, format: e.data.format, durationSec: e.data.durationSec });
        break;
      case 'AudioFailed':
        out.send({ type: 'audio.failed', conversationId, seq: e.seq, replySeq: e.data.replySeq, reason: e.data.reason });
        break;
      case 'DataProposed':
        out.send({ type: 'data.proposed', conversationId, seq: e.seq, replySeq: e.data.replySeq, data: e.data.data });
        break;
      case 'DataConfirmed':
        break; // told by the `confirmed` notice, once its snapshot is written
      case 'MessageSaid':
        // A flow answers without a ReplyGenerated: its prompts' requestIds are not waited on.
        for (const seq of f.requests.keys()) if (seq < e.seq) f.requests.delete(seq);
        // A flow's message is the twin's reply: seed clients run a flow unchanged. Its events share the prompt's correlationId.
        out.send({ type: 'reply', ...twinFields(f), conversationId, seq: e.seq, reply: e.data.text, ...(f.lastPrompt && f.lastPrompt.commandId === e.causationId ? echo(f.lastPrompt.requestId) : {}) });
        break;
      case 'TaskStarted':
        if (s.typed) out.send({ type: 'flow', conversationId, seq: e.seq, task: e.data.task, state: e.data.key ? 'calling' : 'running', taskType: e.data.taskType });
        break;
      case 'FlowTransferred':
        if (s.typed) out.send({ type: 'flow', conversationId, seq: e.seq, task: e.data.task, state: 'transferred', to: e.data.to });
        break;
      case 'FlowEnded':
        if (s.typed) out.send({ type: 'flow', conversationId, seq: e.seq, task: e.data.task, state: 'ended', reason: e.data.reason });
        break;
      case 'ConversationErased':
        out.send({ type: 'conversation.erased', conversationId, seq: e.seq, erasedAt: e.occurredAt });
        // Prompts without a conversationId start a new conversation from now on.
        for (const [twinId, id] of byTwin) if (id === conversationId) byTwin.delete(twinId);
        break;
    }
  };
  // Only an event that goes out as a frame gets a ws.send span, in the trace of the append that made it.
  const framed = e.type === 'ReplyGenerated' || e.type === 'MessageSaid' || e.type === 'DataProposed' || e.type === 'ReplyFailed' || e.type === 'AudioReady' || e.type === 'AudioFailed';
  const attributes = { 'conversation.id': conversationId, 'event.seq': e.seq, 'event.type': e.type, ...(f.twin ? { 'twin.id': f.twin.id } : {}) };
  (framed ? inSpan(tracer, 'ws.send', { parent: contextFrom(e.traceparent), kind: SpanKind.PRODUCER, attributes }, deliver) : deliver())
    .catch((err) => s.deps.logger.warn(`sending event ${conversationId}/${e.seq}: ${(err as Error).message}`));
}

/** A notice answers one command: only the socket that sent it hears it. */
export function onNotice(s: SessionState, n: Notice): void {
  const { out, mine, byTwin } = s;
  if (!mine.has(n.commandId)) return;
  const twinId = mine.get(n.commandId);
  mine.delete(n.commandId);
  const f = s.followed.get(n.conversationId);
  if (!f) return;
  const rid = echo(n.correlationId);
  if (n.type === 'rejected') {
    out.error(n.code, n.message, { ...(f.verified ? twinFields(f) : {}), conversationId: n.conversationId, ...rid });
    // Prompts without a conversationId must not keep going to a conversation that refused this twin.
    if (twinId && byTwin.get(twinId) === n.conversationId && (n.code === 'forbidden' || n.code === 'twin_mismatch' || n.code === 'conversation_erased')) byTwin.delete(twinId);
    if (!f.verified && f.resuming === 0) unfollow(s, n.conversationId);
  } else if (n.type === 'confirmed') out.send({ type: 'data.confirmed', conversationId: n.conversationId, seq: n.seq, data: n.data, ...rid });
  else out.send({ type: 'erased', conversationId: n.conversationId, ...n.erasure, ...rid });
}
