import type { LogPosition } from '../events/schemas.ts';
import type { ConversationState, Message } from './state.ts';

/** A piece of data a twin collects in its dialogue, which the user confirms. */
export type TwinField = {
  name: string;
  type: 'string' | 'number' | 'boolean' | 'email' | 'date';
  description?: string;
  required?: boolean;
  /** For strings: a regular expression the value must match. */
  pattern?: string;
};

/** A digital twin: who the model plays. */
export type Twin = {
  id: string;
  name: string;
  systemPrompt: string;
  model: string;
  voiceId: string;
  /** Data this twin collects; empty: any confirmed data is accepted. */
  fields?: TwinField[];
  /** The flow (GEMELLO_FLOWS_DIR) this twin runs instead of chatting; its messages are the twin's replies. */
  flow?: string;
};

export type ReplyRequest = {
  twin: Twin;
  /** The conversation so far, oldest first, ending with the prompt to answer. */
  history: Message[];
  confirmedData: Record<string, unknown>;
  signal?: AbortSignal;
  /**
   * Called with each piece of the reply's text as the model produces it (the pieces add
   * up to `Reply.text`, or a prefix of it); absent: the model answers in one piece.
   */
  onText?: (delta: string) => void;
};

export type Reply = {
  text: string;
  model: string;
  tokens: { prompt: number; completion: number; total: number };
  /** Values for the twin's fields the model read out of the conversation, each valid for its field. */
  proposed?: Record<string, unknown>;
};

/** Produces a twin's reply. */
export interface ReplyModel {
  readonly name: string;
  reply(request: ReplyRequest): Promise<Reply>;
}

/**
 * A model or speech failure. `retryable` failures were already retried with backoff
 * by the adapter; what reaches the actor is recorded as ReplyFailed/AudioFailed.
 */
export class EffectError extends Error {
  readonly code: string;
  readonly retryable: boolean;
  constructor(code: string, message: string, retryable: boolean) {
    super(message);
    this.code = code;
    this.retryable = retryable;
  }
}

/** A conversation's state at a point of the log, for fast recovery. */
export type Snapshot = {
  conversationId: string;
  seq: number;
  eventId: string | null;
  /** Where the event at `seq` sits in the log. */
  position: LogPosition;
  state: ConversationState;
};

export interface SnapshotStore {
  readonly kind: 'redis' | 'memory';
  /** The stored snapshot, or null if there is none; throws CorruptSnapshot if unreadable. */
  get(conversationId: string): Promise<Snapshot | null>;
  put(snapshot: Snapshot): Promise<void>;
  delete(conversationId: string): Promise<void>;
  /** The offset before which every event of the partition is covered by a snapshot. */
  getCheckpoint(partition: number): Promise<number | null>;
  putCheckpoint(partition: number, offset: number): Promise<void>;
  /**
   * The conversations a host handing the partition over had active (a hint for the next
   * owner, which reads their snapshots and keys ahead; never the truth: a missing or stale
   * hint only costs speed). Kept briefly.
   */
  putActive?(partition: number, conversationIds: string[]): Promise<void>;
  /** The conversations the partition's last owner had active when it handed it over (empty if none is known). */
  getActive?(partition: number): Promise<string[]>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

export class CorruptSnapshot extends Error {
  readonly code = 'corrupt_snapshot';
}

/** Synthesised speech for one reply. */
export type Speech = { bytes: Uint8Array; format: string; contentType: string; durationSec: number };

/** Turns a reply's text into audio in the twin's voice. */
export interface SpeechModel {
  readonly name: string;
  synthesize(request: { text: string; voice: string; signal?: AbortSignal }): Promise<Speech>;
}

/** The read model as a recovery tier: the state projection in Postgres (or PGlite). */
export interface StateSource {
  /** The projected state of a conversation with the position of its last event, or null. */
  stateOf(conversationId: string): Promise<Snapshot | null>;
  /** Every event of the partition before this offset has been applied (null: nothing yet). */
  coveredUntil(partition: number): Promise<number | null>;
}

export type StoredAudio = { audioId: string; format: string; durationSec: number; bytes: number; cached: boolean; speech?: Speech };

/** Where synthesised audio is kept (the read model's audio cache). */
export interface AudioSink {
  /**
   * Stores audio once per (text, voice, format); returns its id and whether it was cached.
   * `speech`: the audio itself when it was synthesised now (a hit reads it with `load`).
   * `conversationId`: the conversation it is spoken to (erasing it deletes the audio only it used).
   * `synthesized`: told the id the new audio is stored under as soon as it is synthesised,
   * before it is written (the id stays the audio's unless another process stored the same meanwhile).
   */
  store(input: { text: string; voice: string; synthesize: () => Promise<Speech>; conversationId?: string; synthesized?: (audioId: string, speech: Speech) => Promise<void> }): Promise<StoredAudio>;
  /** The stored audio itself, or null. */
  load(audioId: string): Promise<Speech | null>;
}


/**
 * Who is alive among the actor hosts of a group: each host renews a short lease for its
 * member id; the others remove a member whose lease ran out from the group (log.evict), so
 * its partitions move in well under a second instead of after the session timeout.
 */
export interface Liveness {
  /** Marks `member` alive for `ttlMs` from now. */
  renew(member: string, ttlMs: number): Promise<void>;
  /** The members whose lease has run out. */
  expired(): Promise<string[]>;
  /** Drops a member's lease (it left, or was removed). */
  forget(members: string[]): Promise<void>;
  close(): Promise<void>;
}

/**
 * What a reply streaming right now looks like to the gateways. `start`: a generation of
 * the reply to `promptSeq` began (a second one for the same prompt means the host that ran
 * the first died: clients get `reply.restart`). `delta`: `text` at `offset` of the whole
 * reply of generation `gen`. `end`: it is over (its event, ReplyGenerated or ReplyStopped or
 * ReplyFailed, is the truth; deltas are not events).
 */
export type StreamUpdate =
  | { kind: 'start'; conversationId: string; promptSeq: number; gen: string }
  | { kind: 'delta'; conversationId: string; promptSeq: number; gen: string; offset: number; text: string }
  | { kind: 'end'; conversationId: string; promptSeq: number; gen: string }
  | AudioChunkUpdate;

/**
 * A sentence of the reply of generation `gen` is spoken: its audio (`audioId`, served at
 * /api/audio/:audioId) is number `index` (0, 1, 2… in order) of the reply; `offset` is where
 * `text` starts in the reply. `last`: no chunk follows. Sent while the reply streams and after
 * (speech lags the text); like deltas, chunks are not events: the whole reply's AudioReady is.
 */
export type AudioChunkUpdate = {
  kind: 'audio';
  conversationId: string;
  promptSeq: number;
  gen: string;
  index: number;
  audioId: string;
  format: string;
  durationSec: number;
  offset: number;
  text: string;
  last: boolean;
};

/** The text of a conversation's reply in flight, as far as it has streamed. */
export type StreamSoFar = { promptSeq: number; gen: string; text: string };

/**
 * Live reply text between the actor host and the gateways, outside the event log: Redis
 * pub/sub (plus the text so far under a key, for a socket that resumes mid-stream), or in
 * process when embedded. Losing it loses only the live view, never a reply.
 */
export interface ReplyStreams {
  readonly kind: 'redis' | 'memory';
  /** Publishes an update, in call order (a caller need not await one before the next); `delta` appends to the text so far, `start` resets it, `end` drops it; `audio` is kept with the conversation's recent chunks. */
  publish(update: StreamUpdate): Promise<void>;
  /** The conversation's reply in flight, or null. */
  current(conversationId: string): Promise<StreamSoFar | null>;
  /** The audio chunks published lately for the conversation (at most the last 64, for a few minutes), oldest first. */
  chunks(conversationId: string): Promise<AudioChunkUpdate[]>;
  /**
   * Keeps a clip just synthesised for a minute, so its chunk goes out before the audio cache's
   * write is done (GET /api/audio/:audioId looks here first). Before the chunk's publish.
   */
  keepClip(audioId: string, clip: { bytes: Uint8Array; contentType: string }): Promise<void>;
  /** Drops what is kept of the conversation (text so far, recent chunks and their clips): it is erased. */
  forget(conversationId: string): Promise<void>;
  /** A clip kept by keepClip, or null (expired, or never kept). */
  clip(audioId: string): Promise<{ bytes: Uint8Array; contentType: string } | null>;
  /** Every update from now on; resolves once listening. */
  subscribe(listener: (u: StreamUpdate) => void): Promise<() => void>;
  close(): Promise<void>;
}

/** An utterance to transcribe: its bytes in a container the transcriber reads (`format`: wav, mp3, webm, ogg, …). */
export type Utterance = { bytes: Uint8Array; format: string; contentType: string; language?: string | undefined; signal?: AbortSignal };

/**
 * Speech to text (the gateway's, for `audio.start` … `audio.end`). Throws an EffectError
 * with a code (`stt_timeout`, `stt_http_<status>`, `stt_unreachable`, …) when it cannot.
 */
export interface SpeechToText {
  readonly name: string;
  /** The text heard, and the audio's length when the transcriber says it. */
  transcribe(utterance: Utterance): Promise<{ text: string; durationSec: number | null }>;
}
