import type { CommandClient } from '../../actors/command-client.ts';
import type { TwinCatalog } from '../../actors/twins.ts';
import type { StreamUpdate } from '../../actors/ports.ts';
import type { EventEnvelope, LoggedEvent } from '../../events/schemas.ts';
import type { EventLog } from '../../log/port.ts';
import type { Logger } from '../../telemetry/logger.ts';
import type { Metrics } from '../../telemetry/metrics.ts';
import type { Feed } from '../feed.ts';
import type { Outbox } from './outbox.ts';
import type { OpenUtterance, VoiceSettings } from './voice.ts';

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
  /**
   * A prompt no actor host has taken up (no PromptReceived) within this long gets an
   * `unavailable` error, so a client is never left in silence while the log or the hosts are
   * away; the prompt is in the log and is still answered once they are back.
   */
  acceptWithinMs: number;
};

export const DEFAULT_LIMITS: SessionLimits = { ratePerSec: 20, burst: 40, maxBufferedBytes: 1 << 20, resumeWaitMs: 5_000, acceptWithinMs: 8_000 };

/** Commands a session remembers as its own (their answers and requestIds go only to it). */
export const MAX_OWN_COMMANDS = 1_000;

/** What the read model says of a conversation: its owner, its twin, its last event's seq. */
export type Conversation = { owner: string | null; twin: { id: string; name: string } | null; lastSeq: number };

export type SessionDeps = {
  log: EventLog;
  feed: Feed;
  catalog: TwinCatalog;
  /** How commands reach the log (sealed with the conversation's key when there are keys). */
  commands: CommandClient;
  /** Events of a conversation after a seq, in order (the read model; may return a page). */
  eventsAfter: ((conversationId: string, afterSeq: number) => Promise<EventEnvelope[]>) | null;
  /** Whose a conversation is, which twin it talks to and its last seq, by the read model (null: it has not seen it). */
  conversationOf?: ((conversationId: string) => Promise<Conversation | null>) | null;
  /** The offset of the events topic up to which the read model has applied a partition. */
  projectedUntil?: ((partition: number) => Promise<number | null>) | null;
  metrics: Metrics;
  logger: Logger;
  limits: SessionLimits;
  /** Speech in (audio.start … audio.end); absent: every utterance gets `stt_unavailable`. */
  voice?: VoiceSettings | null;
};

export function sessionMetrics(metrics: Metrics) {
  return {
    framesIn: metrics.counter('gemello_ws_frames_in_total', 'WebSocket frames received'),
    framesOut: metrics.counter('gemello_ws_frames_out_total', 'WebSocket frames sent'),
    commands: metrics.counter('gemello_gateway_commands_total', 'Commands published to the log by type'),
    errors: metrics.counter('gemello_ws_errors_total', 'Error frames sent, by code'),
    utterances: metrics.counter('gemello_voice_utterances_total', 'Utterances received, by outcome (transcribed, failed, refused)'),
    sttMs: metrics.histogram('gemello_stt_latency_ms', 'Speech-to-text call latency', [50, 100, 250, 500, 1000, 2000, 5000, 10000, 30000]),
  };
}

export type SessionMetrics = ReturnType<typeof sessionMetrics>;

/** A conversation this socket follows. */
export type Followed = {
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
  /** Live reply text held back likewise. */
  pendingStream: StreamUpdate[] | null;
  resuming: number;
  /** This socket's last prompt in a flow: what the flow says in answer (same causation, or the first message its call or timer made) echoes its requestId. */
  lastPrompt?: { commandId: string; requestId: string | null; answered: boolean };
  /** Whether this socket asked for `reply.delta` frames of this conversation (a prompt with stream, or a resume). */
  stream: boolean;
  /** The reply streaming to this socket: its prompt, its generation, and how many characters the socket has. */
  live: { promptSeq: number; gen: string; sent: number } | null;
  /** The highest prompt whose answer (reply, stop, failure) this socket has: later deltas of it are stale. */
  answered: number;
  /** The reply being spoken to this socket (`audio.chunk`): its prompt, generation and the next index it gets. */
  spoken: { promptSeq: number; gen: string; next: number } | null;
  /** The highest prompt whose reply this socket saw stopped: its chunks are not sent any more. */
  silenced: number;
};

/** One socket's protocol state, passed to each part of the session. */
export type SessionState = {
  deps: SessionDeps;
  m: SessionMetrics;
  principal: string | null;
  out: Outbox;
  followed: Map<string, Followed>;
  /** Without a conversationId, the socket keeps one conversation per twin: twin id → conversation id. */
  byTwin: Map<string, string>;
  /** Commands this socket published that are not yet answered: commandId → the prompt's twin id and its conversation. */
  mine: Map<string, { twinId: string | null; conversationId: string }>;
  /** The last command of each conversation on its way to the log: the next one goes after it, so frames land in the order sent. */
  sending: Map<string, Promise<unknown>>;
  /**
   * Whether the socket speaks the typed protocol (it sent a frame with `type`, or `stream`).
   * Until then it is a seed client: it gets only frames with `reply` or `error`.
   */
  typed: boolean;
  /** The utterance being received (audio.start … audio.end), in memory only. */
  utterance: OpenUtterance | null;
  /** Utterances of this socket being transcribed now. */
  transcribing: number;
};

/** The `requestId` field of an answer, when the frame it answers had one. */
export const echo = (requestId: string | null | undefined): { requestId?: string } => (requestId ? { requestId } : {});
