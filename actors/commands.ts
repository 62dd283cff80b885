import { z } from 'zod';

const meta = {
  commandId: z.string().min(1).max(100),
  conversationId: z.string().min(1).max(200),
  /** The client's request id, echoed in answers and kept as the events' correlationId. */
  correlationId: z.string().max(200).nullable(),
  /** Who sent it (an API key's or token's principal), or null when auth is off. */
  principal: z.string().max(200).nullable(),
  traceparent: z.string().max(200).nullable(),
  issuedAt: z.string(),
};

const twin = z.object({ id: z.string().min(1), name: z.string().min(1) });
const sealed = z.object({ enc: z.literal('a256gcm'), iv: z.string().max(100), ct: z.string() });
const confirmed = z.record(z.string(), z.unknown());
/** With no data: the seq of the proposal the user confirms (refused if another replaced it). */
const proposalSeq = z.number().int().positive();

const start = z.object({ ...meta, type: z.literal('StartConversation'), data: z.object({ twin, metadata: z.record(z.string(), z.unknown()).default({}) }) });
/**
 * Erases the conversation's personal content (crypto-shredding). `asOperator`: sent by
 * the operator's CLI, which needs no principal; the gateway sets it false, so a client
 * can erase only its own conversations. `by` names who asked, for the record.
 */
/**
 * Stops the reply in flight, or (with heardChars, nothing in flight) trims the last reply
 * to what the user heard. `inFlight` is filled by the actor host, never by a sender: what
 * the model had generated when the host cancelled it.
 */
const stop = z.object({
  ...meta,
  type: z.literal('StopReply'),
  data: z.object({ heardChars: z.number().int().nonnegative().nullable(), inFlight: z.object({ promptSeq: z.number().int().positive(), text: z.string() }).optional() }),
});
const erase = z.object({
  ...meta,
  type: z.literal('EraseConversation'),
  data: z.object({ by: z.string().max(200).nullable(), via: z.enum(['api', 'cli', 'retention']), reason: z.string().max(500).nullable().default(null), asOperator: z.boolean().default(false) }),
});

/**
 * A prompt that was spoken: the utterance the gateway transcribed (its text is the prompt's).
 * The audio does not travel; `kept`: the gateway kept it sealed (GEMELLO_KEEP_VOICE).
 */
const speech = z.object({ audioId: z.string().min(1).max(100), format: z.string().min(1).max(20), durationSec: z.number().nonnegative(), kept: z.boolean().default(false) });
/**
 * Whether anyone asked to see (or hear) the reply while it is written: the gateway says
 * `false` when the socket that sent the prompt takes only the whole reply (a seed client),
 * and the actor host then asks the model for the reply in one piece, without live text on
 * the reply streams. Absent (commands from before the flag, other senders): streamed, as
 * before, so nothing that followed a reply live stops seeing it.
 */
const stream = z.boolean().optional();
/** An utterance the gateway could not transcribe: recorded like a failed reply (SpeechFailed). */
const speechFailure = z.object({
  ...meta,
  type: z.literal('ReportSpeechFailure'),
  data: z.object({ twin, audioId: z.string().min(1).max(100), format: z.string().min(1).max(20), durationSec: z.number().nonnegative(), code: z.string().max(100), reason: z.string().max(2000) }),
});

/** Commands a client can cause, with their content in the clear: what `decide` reads. */
export const ClientCommand = z.discriminatedUnion('type', [
  start,
  z.object({ ...meta, type: z.literal('SubmitPrompt'), data: z.object({ twin, text: z.string().min(1), speech: speech.optional(), stream }) }),
  z.object({ ...meta, type: z.literal('ConfirmData'), data: z.object({ data: confirmed, proposalSeq: proposalSeq.optional() }) }),
  stop,
  erase,
  speechFailure,
]);
export type ClientCommand = z.infer<typeof ClientCommand>;

/**
 * Commands as they travel on `gemello.commands`: a prompt's text and confirmed data may be
 * sealed with the conversation's key (actors/command-seal.ts), so they can be shredded too.
 */
export const WireCommand = z.discriminatedUnion('type', [
  start,
  z.object({ ...meta, type: z.literal('SubmitPrompt'), data: z.object({ twin, text: z.union([z.string().min(1), sealed]), speech: speech.optional(), stream }) }),
  z.object({ ...meta, type: z.literal('ConfirmData'), data: z.object({ data: z.union([sealed, confirmed]), proposalSeq: proposalSeq.optional() }) }),
  stop,
  erase,
  speechFailure,
]);
export type WireCommand = z.infer<typeof WireCommand>;

/**
 * Commands the host gives itself when a side effect finishes. They never travel on
 * Kafka: the pending work they complete is already durable as an event.
 */
export type EffectCommand =
  | { type: 'RecordReply'; promptSeq: number; text: string; model: string; tokens: { prompt: number; completion: number; total: number }; latencyMs: number; audio: boolean; proposed?: Record<string, unknown> }
  | { type: 'RecordReplyFailure'; promptSeq: number; reason: string; code: string; latencyMs: number }
  | { type: 'RecordAudio'; replySeq: number; audioId: string; format: string; durationSec: number; bytes: number; voice: string }
  | { type: 'RecordAudioFailure'; replySeq: number; reason: string }
  /** A flow's side effect (backend call, email, SMS) finished: its outcome, for the call with this idempotency key. */
  | { type: 'RecordFlowEffect'; key: string; backend: string; status: 'ok' | 'error'; httpStatus: number | null; attempts: number; latencyMs: number; result: unknown; error: string | null; at: string }
  /** The model read (or not) the value a flow's parsers could not read in the prompt at `promptSeq`. */
  | { type: 'RecordFlowRead'; promptSeq: number; value: unknown; at: string }
  /** A flow's noInput timer (set by the MessageSaid at `timerSeq`) is due. */
  | { type: 'FireFlowTimer'; timerSeq: number; at: string };

export type Command = ClientCommand | EffectCommand;

/** A command refused by the conversation: terminal, reaches the client with its code. */
export class DomainError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}
