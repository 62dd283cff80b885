import { randomUUID } from 'node:crypto';
import { SpanKind, trace } from '@opentelemetry/api';
import { sealCommand } from '../sealing/commands.ts';
import type { ClientCommand, WireCommand } from '../actors/commands.ts';
import { fieldsSchema } from '../actors/twins.ts';
import type { TwinCatalog } from '../actors/twins.ts';
import type { Notice } from '../events/codec.ts';
import { KeyDestroyed } from '../sealing/keys.ts';
import type { KeyStore } from '../sealing/keys.ts';
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
  /** How long a resume waits for the read model to reach the log's end before it gives up. */
  resumeWaitMs: number;
};

export const DEFAULT_LIMITS: SessionLimits = { ratePerSec: 20, burst: 40, maxBufferedBytes: 1 << 20, resumeWaitMs: 5_000 };

/** Commands a session remembers as its own (their answers and requestIds go only to it). */
const MAX_OWN_COMMANDS = 1_000;

export type SessionDeps = {
  log: EventLog;
  feed: Feed;
  catalog: TwinCatalog;
  /** Events of a conversation after a seq, in order (the read model; may return a page). */
  eventsAfter: ((conversationId: string, afterSeq: number) => Promise<EventEnvelope[]>) | null;
  /** Whose a conversation is and which twin it talks to, by the read model (null: it has not seen it). */
  conversationOf?: ((conversationId: string) => Promise<{ owner: string | null; twin: { id: string; name: string } | null } | null>) | null;
  /** The offset of the events topic up to which the read model has applied a partition. */
  projectedUntil?: ((partition: number) => Promise<number | null>) | null;
  /** The conversations' data keys: prompts and confirmed data go to the log sealed with them (absent: in the clear). */
  keys?: KeyStore | null;
  metrics: Metrics;
  logger: Logger;
  limits: SessionLimits;
};

type Followed = {
  stop: () => void;
  lastSeq: number;
  twin: { id: string; name: string } | null;
  requests: Map<number, string | null>;
  /**
   * Whether this socket may see the conversation's events. With auth on, a conversation
   * named by a client is not verified until the actor accepts one of its commands (an
   * event caused by it) or the read model says the principal owns it: until then another
   * principal's conversation would leak to anyone who knows its id.
   */
  verified: boolean;
  /** Live events held back while a resume reads the read model, so nothing is sent out of order. */
  pending: Array<LoggedEvent | EventEnvelope> | null;
  resuming: number;
};

/** A resume that cannot be served, with the code the client gets. */
class ResumeRefused extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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
  /** Commands this socket published that are not yet answered: commandId → the prompt's twin id. */
  const mine = new Map<string, string | null>();
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

  function onEvent(conversationId: string, e: LoggedEvent | EventEnvelope): void {
    const f = followed.get(conversationId);
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
      return r ? { requestId: r } : {};
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
          }
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
        case 'DataProposed':
          send({ type: 'data.proposed', conversationId, seq: e.seq, replySeq: e.data.replySeq, data: e.data.data });
          break;
        case 'DataConfirmed':
          break; // told by the `confirmed` notice, once its snapshot is written
        case 'ConversationErased':
          send({ type: 'conversation.erased', conversationId, seq: e.seq, erasedAt: e.occurredAt });
          // Prompts without a conversationId start a new conversation from now on.
          for (const [twinId, id] of byTwin) if (id === conversationId) byTwin.delete(twinId);
          break;
      }
    };
    // Only an event that goes out as a frame gets a ws.send span, in the trace of the append that made it.
    const framed = e.type === 'ReplyGenerated' || e.type === 'DataProposed' || e.type === 'ReplyFailed' || e.type === 'AudioReady' || e.type === 'AudioFailed';
    const attributes = { 'conversation.id': conversationId, 'event.seq': e.seq, 'event.type': e.type, ...(f.twin ? { 'twin.id': f.twin.id } : {}) };
    (framed ? inSpan(tracer, 'ws.send', { parent: contextFrom(e.traceparent), kind: SpanKind.PRODUCER, attributes }, deliver) : deliver())
      .catch((err) => deps.logger.warn(`sending event ${conversationId}/${e.seq}: ${(err as Error).message}`));
  }

  function sendResumed(conversationId: string, e: LoggedEvent | EventEnvelope): void {
    send({ type: 'event', conversationId, seq: e.seq, event: e.type, occurredAt: e.occurredAt, data: e.data });
  }

  function onNotice(n: Notice): void {
    // A notice answers one command: only the socket that sent it hears it.
    if (!mine.has(n.commandId)) return;
    const twinId = mine.get(n.commandId);
    mine.delete(n.commandId);
    const f = followed.get(n.conversationId);
    if (!f) return;
    const rid = n.correlationId ? { requestId: n.correlationId } : {};
    if (n.type === 'rejected') {
      error(n.code, n.message, { ...(f.verified ? twinFields(f) : {}), conversationId: n.conversationId, ...rid });
      // Prompts without a conversationId must not keep going to a conversation that refused this twin.
      if (twinId && byTwin.get(twinId) === n.conversationId && (n.code === 'forbidden' || n.code === 'twin_mismatch' || n.code === 'conversation_erased')) byTwin.delete(twinId);
      if (!f.verified && f.resuming === 0) unfollow(n.conversationId);
    } else if (n.type === 'confirmed') send({ type: 'data.confirmed', conversationId: n.conversationId, seq: n.seq, data: n.data, ...rid });
    else send({ type: 'erased', conversationId: n.conversationId, ...n.erasure, ...rid });
  }

  function unfollow(conversationId: string): void {
    followed.get(conversationId)?.stop();
    followed.delete(conversationId);
  }

  function follow(conversationId: string, twin: { id: string; name: string } | null, verified = principal === null): Followed {
    let f = followed.get(conversationId);
    if (!f) {
      const entry: Followed = { stop: () => {}, lastSeq: 0, twin, requests: new Map(), verified, pending: null, resuming: 0 };
      entry.stop = deps.feed.follow(conversationId, { event: (e) => onEvent(conversationId, e), notice: onNotice });
      followed.set(conversationId, entry);
      f = entry;
    }
    if (twin) f.twin = twin;
    if (verified) f.verified = true;
    return f;
  }

  /**
   * The command as it goes on the log: its content sealed with the conversation's key (made
   * here for a new conversation), so erasing the conversation shreds the commands topic too.
   */
  async function sealed(cmd: ClientCommand): Promise<WireCommand | null> {
    if (!deps.keys || (cmd.type !== 'SubmitPrompt' && cmd.type !== 'ConfirmData')) return cmd;
    try {
      return sealCommand(cmd, await deps.keys.create(cmd.conversationId));
    } catch (err) {
      if (!(err instanceof KeyDestroyed)) throw err;
      const twin = cmd.type === 'SubmitPrompt' ? { digitalTwinId: cmd.data.twin.id, digitalTwinName: cmd.data.twin.name } : {};
      error('conversation_erased', ERROR_CODES.conversation_erased, { ...twin, conversationId: cmd.conversationId, ...(cmd.correlationId ? { requestId: cmd.correlationId } : {}) });
      return null;
    }
  }

  async function publish(plain: ClientCommand, twinId: string | null = null): Promise<void> {
    const cmd = await sealed(plain);
    if (!cmd) {
      if (twinId && byTwin.get(twinId) === plain.conversationId) byTwin.delete(twinId);
      return;
    }
    mine.set(cmd.commandId, twinId);
    // The frame's span (ws.receive) gets the ids a trace reader searches by.
    trace.getActiveSpan()?.setAttributes({ 'conversation.id': cmd.conversationId, ...(twinId ? { 'twin.id': twinId } : {}) });
    if (mine.size > MAX_OWN_COMMANDS) mine.delete(mine.keys().next().value!);
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
    const minted = !frame.conversationId && !byTwin.has(twin.id);
    const conversationId = frame.conversationId ?? byTwin.get(twin.id) ?? randomUUID();
    byTwin.set(twin.id, conversationId);
    // A conversation this socket named itself (a fresh uuid) is its own from the start.
    follow(conversationId, { id: twin.id, name: twin.name }, principal === null || minted);
    await publish({ ...meta(conversationId, frame.requestId), type: 'SubmitPrompt', data: { twin: { id: twin.id, name: twin.name }, text: frame.prompt } }, twin.id);
  }

  async function confirm(frame: ConfirmFrame): Promise<void> {
    const f = follow(frame.conversationId, null);
    // The twin's declared fields are the schema of what may be confirmed.
    const twin = f.twin ? deps.catalog.find(f.twin.id, undefined) : undefined;
    const schema = twin ? fieldsSchema(twin.fields ?? []) : null;
    // Without data the proposals are confirmed; they were checked against the fields when the model made them.
    if (schema && frame.data) {
      const checked = schema.safeParse(frame.data);
      if (!checked.success) {
        const issue = checked.error.issues[0];
        error('invalid_data', `${issue?.path.join('.') || 'data'}: ${issue?.message}`, { conversationId: frame.conversationId, ...(frame.requestId ? { requestId: frame.requestId } : {}) });
        return;
      }
    }
    await publish({ ...meta(frame.conversationId, frame.requestId), type: 'ConfirmData', data: { data: (frame.data ?? {}) as Record<string, unknown>, ...(frame.proposalSeq !== undefined ? { proposalSeq: frame.proposalSeq } : {}) } });
  }

  /** Waits until the read model holds everything the log had for the conversation's partition at the call. */
  async function caughtUp(conversationId: string): Promise<void> {
    if (!deps.projectedUntil) return;
    const partition = partitionFor(conversationId, deps.log.partitions);
    const end = (await deps.log.endOffsets(TOPICS.events))[partition] ?? 0;
    const deadline = Date.now() + deps.limits.resumeWaitMs;
    while (((await deps.projectedUntil(partition)) ?? 0) < end) {
      if (closed) return;
      if (Date.now() > deadline) throw new ResumeRefused('unavailable', 'the read model is behind the log; send resume again');
      await sleep(20);
    }
  }

  async function resume(frame: ResumeFrame): Promise<void> {
    const id = frame.conversationId;
    const rid = frame.requestId ? { requestId: frame.requestId } : {};
    if (!deps.eventsAfter) {
      error('unavailable', 'resume needs the read model, which this process does not have', { conversationId: id, ...rid });
      return;
    }
    // Follow first (holding live events back), then make sure the read model has caught up
    // with the log, then read it: an event is either in the log before the follow began, and
    // so in what is read, or it comes live after it. Both paths may carry the same event; it
    // is sent once, in seq order.
    const known = followed.has(id);
    const f = follow(id, null);
    f.resuming++;
    f.pending ??= [];
    try {
      await caughtUp(id);
      if (!f.verified || !f.twin) {
        // The twin too: a client resuming after seq 1 is not sent ConversationStarted, yet
        // its replies name the twin.
        const c = deps.conversationOf ? await deps.conversationOf(id) : null;
        if (!f.verified) {
          if (!c) throw new ResumeRefused('conversation_not_found', `no conversation ${id}`);
          if (c.owner !== null && c.owner !== principal) throw new ResumeRefused('forbidden', `conversation ${id} belongs to another principal`);
          f.verified = true;
        }
        f.twin ??= c?.twin ?? null;
      }
      // The client names what it has: everything after afterSeq, even what this socket was sent live.
      let after = frame.afterSeq;
      for (;;) {
        const page = await deps.eventsAfter(id, after);
        const fresh = page.filter((e) => e.seq > after);
        if (!fresh.length || closed) break;
        for (const e of fresh) {
          if (e.seq <= after) continue;
          if (e.type === 'ConversationStarted') f.twin = { id: e.data.twinId, name: e.data.twinName };
          sendResumed(id, e);
          after = e.seq;
        }
      }
      f.lastSeq = Math.max(f.lastSeq, after);
      send({ type: 'resumed', conversationId: id, lastSeq: f.lastSeq, ...twinFields(f), ...rid });
    } catch (err) {
      if (!(err instanceof ResumeRefused)) throw err;
      error(err.code, err.message, { conversationId: id, ...rid });
    } finally {
      f.resuming--;
      if (f.resuming === 0) {
        const held = (f.pending ?? []).sort((a, b) => a.seq - b.seq);
        f.pending = null;
        for (const e of held) onEvent(id, e);
        if (!known && !f.verified) unfollow(id);
      }
    }
  }

  async function handleText(text: string): Promise<void> {
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
  }

  return {
    /** Handles one text frame; never throws. */
    async onText(text: string): Promise<void> {
      try {
        await handleText(text);
      } catch (err) {
        deps.logger.error(`frame handling failed: ${(err as Error).message}`);
        error('internal', 'the gateway could not handle the frame');
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
