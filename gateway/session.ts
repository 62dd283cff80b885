import { randomUUID } from 'node:crypto';
import { SpanKind } from '@opentelemetry/api';
import type { ClientCommand } from '../actors/commands.ts';
import { fieldsSchema } from '../actors/twins.ts';
import type { TwinCatalog } from '../actors/twins.ts';
import type { Notice } from '../events/codec.ts';
import type { EventEnvelope, LoggedEvent } from '../events/schemas.ts';
import { partitionFor } from '../log/partition.ts';
import type { EventLog } from '../log/port.ts';
import { TOPICS } from '../log/port.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { Metrics } from '../telemetry/metrics.ts';
import { contextFrom, inSpan, traceparentOf, tracerFor } from '../telemetry/trace.ts';
import type { Feed } from './feed.ts';
import { ERROR_CODES, parseFrame } from './protocol.ts';
import type { ConfirmFrame, ErrorCode, PromptFrame, ResumeFrame } from './protocol.ts';

/** What a session needs from the socket it serves (Node's ws or Deno's WebSocket). */
export type SocketPort = {
  send(text: string): void;
  /** Bytes queued but not yet written to the network. */
  buffered(): number;
  close(code: number, reason: string): void;
};

export type SessionLimits = {
  /** Frames per second a socket may send, on average… */
  ratePerSec: number;
  /** …and in a burst. */
  burst: number;
  /** A socket that lets this much output pile up unread is closed (it can `resume` later). */
  maxBufferedBytes: number;
};

export const DEFAULT_LIMITS: SessionLimits = { ratePerSec: 20, burst: 40, maxBufferedBytes: 1 << 20 };

export type SessionDeps = {
  log: EventLog;
  feed: Feed;
  catalog: TwinCatalog;
  /** Events of a conversation after a seq, in order (the read model). */
  eventsAfter: ((conversationId: string, afterSeq: number) => Promise<EventEnvelope[]>) | null;
  metrics: Metrics;
  logger: Logger;
  limits: SessionLimits;
};

type Followed = { stop: () => void; lastSeq: number; twin: { id: string; name: string } | null; requests: Map<number, string | null> };

const tracer = tracerFor('gemello-gateway');

export function sessionMetrics(metrics: Metrics) {
  return {
    framesIn: metrics.counter('gemello_ws_frames_in_total', 'WebSocket frames received'),
    framesOut: metrics.counter('gemello_ws_frames_out_total', 'WebSocket frames sent'),
    commands: metrics.counter('gemello_gateway_commands_total', 'Commands published to the log by type'),
    errors: metrics.counter('gemello_ws_errors_total', 'Error frames sent, by code'),
  };
}

/**
 * One WebSocket connection: validates frames, turns them into commands on the log, and
 * turns the events of the conversations it follows back into frames.
 */
export function createSession(deps: SessionDeps, socket: SocketPort, principal: string | null, m: ReturnType<typeof sessionMetrics>) {
  const followed = new Map<string, Followed>();
  const byTwin = new Map<string, string>();
  let tokens = deps.limits.burst;
  let refilled = Date.now();
  let closed = false;
  let lastActivity = Date.now();

  function send(frame: Record<string, unknown>): void {
    if (closed) return;
    if (socket.buffered() > deps.limits.maxBufferedBytes) {
      // The client does not read: stop queueing for it rather than grow without bound.
      closed = true;
      m.errors.inc({ code: 'slow_consumer' });
      socket.close(1008, 'slow consumer: too much unread output; reconnect and resume');
      return;
    }
    socket.send(JSON.stringify(frame));
    m.framesOut.inc();
  }

  function error(code: ErrorCode, message: string, extra: Record<string, unknown> = {}): void {
    m.errors.inc({ code });
    send({ type: 'error', ...extra, error: message, code });
  }

  function allow(): boolean {
    const now = Date.now();
    tokens = Math.min(deps.limits.burst, tokens + ((now - refilled) / 1000) * deps.limits.ratePerSec);
    refilled = now;
    if (tokens < 1) return false;
    tokens -= 1;
    return true;
  }

  function twinFields(f: Followed) {
    return f.twin ? { digitalTwinId: f.twin.id, digitalTwinName: f.twin.name } : {};
  }

  function onEvent(conversationId: string, e: LoggedEvent | EventEnvelope, resumed = false): void {
    const f = followed.get(conversationId);
    if (!f || e.seq <= f.lastSeq) return; // the first event with a seq wins; resume and live may overlap
    f.lastSeq = e.seq;
    if (resumed) {
      send({ type: 'event', conversationId, seq: e.seq, event: e.type, occurredAt: e.occurredAt, data: e.data });
      return;
    }
    const requestId = (seq: number) => {
      const r = f.requests.get(seq);
      f.requests.delete(seq);
      return r ? { requestId: r } : {};
    };
    void inSpan(tracer, 'ws.send', { parent: contextFrom(e.traceparent), kind: SpanKind.PRODUCER, attributes: { 'conversation.id': conversationId, 'event.seq': e.seq, 'event.type': e.type } }, async () => {
      switch (e.type) {
        case 'ConversationStarted':
          f.twin = { id: e.data.twinId, name: e.data.twinName };
          break;
        case 'PromptReceived':
          f.requests.set(e.seq, e.data.requestId);
          break;
        case 'ReplyGenerated':
          send({ type: 'reply', ...twinFields(f), conversationId, seq: e.seq, reply: e.data.text, ...requestId(e.data.promptSeq) });
          break;
        case 'ReplyFailed':
          error('model_failed', e.data.reason, { ...twinFields(f), conversationId, seq: e.seq, reason: e.data.code, ...requestId(e.data.promptSeq) });
          break;
        case 'AudioReady':
          send({ type: 'audio', conversationId, seq: e.seq, replySeq: e.data.replySeq, audioUrl: `/api/audio/${e.data.audioId}`, format: e.data.format, durationSec: e.data.durationSec });
          break;
        case 'AudioFailed':
          send({ type: 'audio.failed', conversationId, seq: e.seq, replySeq: e.data.replySeq, reason: e.data.reason });
          break;
        case 'DataConfirmed':
          break; // told by the `confirmed` notice, once its snapshot is written
      }
    });
  }

  function onNotice(n: Notice): void {
    const f = followed.get(n.conversationId);
    if (!f) return;
    const rid = n.correlationId ? { requestId: n.correlationId } : {};
    if (n.type === 'rejected') error(n.code, n.message, { ...twinFields(f), conversationId: n.conversationId, ...rid });
    else send({ type: 'data.confirmed', conversationId: n.conversationId, seq: n.seq, data: n.data, ...rid });
  }

  function follow(conversationId: string, twin: { id: string; name: string } | null): Followed {
    let f = followed.get(conversationId);
    if (!f) {
      const entry: Followed = { stop: () => {}, lastSeq: 0, twin, requests: new Map() };
      entry.stop = deps.feed.follow(conversationId, { event: (e) => onEvent(conversationId, e), notice: onNotice });
      followed.set(conversationId, entry);
      f = entry;
    }
    if (twin) f.twin = twin;
    return f;
  }

  async function publish(cmd: ClientCommand): Promise<void> {
    await inSpan(tracer, 'kafka.produce', { kind: SpanKind.PRODUCER, attributes: { 'conversation.id': cmd.conversationId, 'command.type': cmd.type } }, async (span, ctx) => {
      cmd.traceparent = traceparentOf(ctx);
      const partition = partitionFor(cmd.conversationId, deps.log.partitions);
      const headers: Record<string, string> = { 'command-type': cmd.type };
      if (cmd.traceparent) headers.traceparent = cmd.traceparent;
      const offset = await deps.log.append(TOPICS.commands, partition, [{ key: cmd.conversationId, value: JSON.stringify(cmd), headers }]);
      span.setAttributes({ 'messaging.kafka.partition': partition, 'messaging.kafka.offset': offset });
    });
    m.commands.inc({ type: cmd.type });
  }

  const meta = (conversationId: string, requestId: string | undefined) => ({
    commandId: randomUUID(),
    conversationId,
    correlationId: requestId ?? null,
    principal,
    traceparent: null,
    issuedAt: new Date().toISOString(),
  });

  async function prompt(frame: PromptFrame): Promise<void> {
    const twin = deps.catalog.find(frame.digitalTwinId, frame.digitalTwinName);
    const rid = frame.requestId ? { requestId: frame.requestId } : {};
    if (!twin) {
      error('twin_not_found', 'Digital twin not found', { digitalTwinId: frame.digitalTwinId, digitalTwinName: frame.digitalTwinName, ...rid });
      return;
    }
    // Without a conversationId, the socket keeps one conversation per twin.
    const conversationId = frame.conversationId ?? byTwin.get(twin.id) ?? randomUUID();
    byTwin.set(twin.id, conversationId);
    follow(conversationId, { id: twin.id, name: twin.name });
    await publish({ ...meta(conversationId, frame.requestId), type: 'SubmitPrompt', data: { twin: { id: twin.id, name: twin.name }, text: frame.prompt } });
  }

  async function confirm(frame: ConfirmFrame): Promise<void> {
    const f = follow(frame.conversationId, null);
    // The twin's declared fields are the schema of what may be confirmed.
    const twin = f.twin ? deps.catalog.find(f.twin.id, undefined) : undefined;
    const schema = twin ? fieldsSchema(twin.fields ?? []) : null;
    if (schema) {
      const checked = schema.safeParse(frame.data);
      if (!checked.success) {
        const issue = checked.error.issues[0];
        error('invalid_data', `${issue?.path.join('.') || 'data'}: ${issue?.message}`, { conversationId: frame.conversationId, ...(frame.requestId ? { requestId: frame.requestId } : {}) });
        return;
      }
    }
    await publish({ ...meta(frame.conversationId, frame.requestId), type: 'ConfirmData', data: { data: frame.data as Record<string, unknown> } });
  }

  async function resume(frame: ResumeFrame): Promise<void> {
    const rid = frame.requestId ? { requestId: frame.requestId } : {};
    if (!deps.eventsAfter) {
      error('unavailable', 'resume needs the read model, which this process does not have', { conversationId: frame.conversationId, ...rid });
      return;
    }
    // Follow first, then read what was missed: an event that lands in between comes by
    // both paths and is sent once (seq order, first wins).
    const f = follow(frame.conversationId, null);
    f.lastSeq = Math.max(f.lastSeq, frame.afterSeq);
    const events = await deps.eventsAfter(frame.conversationId, frame.afterSeq);
    for (const e of events) {
      if (e.type === 'ConversationStarted') f.twin = { id: e.data.twinId, name: e.data.twinName };
      onEvent(frame.conversationId, e, true);
    }
    send({ type: 'resumed', conversationId: frame.conversationId, lastSeq: f.lastSeq, ...twinFields(f), ...rid });
  }

  return {
    /** Handles one text frame; never throws. */
    async onText(text: string): Promise<void> {
      lastActivity = Date.now();
      m.framesIn.inc();
      if (!allow()) {
        error('rate_limited', ERROR_CODES.rate_limited);
        return;
      }
      const parsed = parseFrame(text);
      if (!parsed.ok) {
        error(parsed.code, parsed.error, parsed.requestId ? { requestId: parsed.requestId } : {});
        return;
      }
      const frame = parsed.frame;
      try {
        await inSpan(tracer, 'ws.receive', { kind: SpanKind.SERVER, attributes: { 'ws.frame.type': frame.type ?? 'prompt', 'twin.id': 'digitalTwinId' in frame ? (frame.digitalTwinId ?? '') : '' } }, async () => {
          if (frame.type === 'confirm') await confirm(frame);
          else if (frame.type === 'resume') await resume(frame);
          else await prompt(frame);
        });
      } catch (err) {
        deps.logger.warn(`frame failed: ${(err as Error).message}`);
        error('unavailable', `could not hand the request to the log: ${(err as Error).message}`, frame.requestId ? { requestId: frame.requestId } : {});
      }
    },
    onBinary(): void {
      lastActivity = Date.now();
      m.framesIn.inc();
      if (!allow()) return error('rate_limited', ERROR_CODES.rate_limited);
      error('binary_frame', ERROR_CODES.binary_frame);
    },
    onClose(): void {
      closed = true;
      for (const f of followed.values()) f.stop();
      followed.clear();
    },
    idleFor(now: number): number {
      return now - lastActivity;
    },
  };
}

export type Session = ReturnType<typeof createSession>;
