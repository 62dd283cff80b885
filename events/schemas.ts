import { z } from 'zod';
import { FLOW_SCHEMA_VERSION, FlowEventData } from './flows.ts';

/** Token usage reported by the model for one reply. */
export const TokenUsage = z.object({
  prompt: z.number().int().nonnegative(),
  completion: z.number().int().nonnegative(),
  total: z.number().int().nonnegative(),
});

/**
 * The data of every event type, at its current schema version.
 * Adding a field: make it optional or bump the version and add an upcaster in upcast.ts.
 */
export const EventData = {
  ConversationStarted: z.object({
    twinId: z.string().min(1),
    twinName: z.string().min(1),
    userId: z.string().nullable(),
    metadata: z.record(z.string(), z.unknown()).default({}),
  }),
  PromptReceived: z.object({
    text: z.string(),
    requestId: z.string().nullable(),
    /** In a flow: the parsers read nothing in it, so the model reads it for the data node asked (a durable effect). */
    read: z.literal('model').optional(),
    /** `voice`: the text is the transcript of an utterance (the SpeechReceived just before it). Absent: typed. */
    source: z.literal('voice').optional(),
  }),
  /**
   * The caller spoke: an utterance was transcribed (by the gateway, before this was
   * appended). `text` is the transcript (sealed like a prompt); the PromptReceived that
   * follows carries the same text as the prompt. The audio itself is not in the log:
   * `kept` says whether it was kept (GEMELLO_KEEP_VOICE, sealed, in `voice_clips`).
   */
  SpeechReceived: z.object({
    audioId: z.string().min(1),
    format: z.string().min(1),
    durationSec: z.number().nonnegative(),
    text: z.string(),
    kept: z.boolean().default(false),
  }),
  /** An utterance could not be transcribed (recorded like ReplyFailed; the conversation goes on). */
  SpeechFailed: z.object({
    audioId: z.string().min(1),
    format: z.string().min(1),
    durationSec: z.number().nonnegative(),
    code: z.string(),
    reason: z.string(),
    requestId: z.string().nullable(),
  }),
  DataConfirmed: z.object({
    data: z.record(z.string(), z.unknown()),
    requestId: z.string().nullable(),
    /** In a flow: the data node the user confirmed (its value is `data`'s one entry, `<ddt>.<node>`). */
    flow: z.object({ task: z.string(), node: z.string() }).optional(),
  }),
  ReplyGenerated: z.object({
    promptSeq: z.number().int().positive(),
    text: z.string(),
    model: z.string(),
    tokens: TokenUsage,
    latencyMs: z.number().nonnegative(),
    /** Whether speech was asked for this reply (an AudioReady or AudioFailed follows). */
    audio: z.boolean().default(false),
  }),
  /**
   * The model read values for the twin's fields out of the conversation (structured
   * output) and proposes them; the user confirms them (ConfirmData) or not. Follows the
   * ReplyGenerated (`replySeq`) that carried them.
   */
  DataProposed: z.object({
    replySeq: z.number().int().positive(),
    data: z.record(z.string(), z.unknown()),
  }),
  ReplyFailed: z.object({
    promptSeq: z.number().int().positive(),
    reason: z.string(),
    code: z.string(),
    latencyMs: z.number().nonnegative(),
  }),
  /**
   * The user stopped the reply (a stop frame, or barge-in on its speech). In flight: the
   * model was cancelled and `text` is what it had generated; the prompt is answered by
   * this. After the reply (`replySeq` set): `text` is that reply. `heardChars`: how much
   * of `text` the user really heard or read; the model's history keeps only that prefix.
   */
  ReplyStopped: z.object({
    promptSeq: z.number().int().positive(),
    text: z.string(),
    heardChars: z.number().int().nonnegative().nullable(),
    replySeq: z.number().int().positive().optional(),
  }),
  AudioReady: z.object({
    replySeq: z.number().int().positive(),
    audioId: z.string(),
    format: z.string(),
    durationSec: z.number().nonnegative(),
    bytes: z.number().int().nonnegative(),
    voice: z.string(),
  }),
  AudioFailed: z.object({
    replySeq: z.number().int().positive(),
    reason: z.string(),
  }),
  /**
   * The conversation's personal content was erased: its data key is destroyed, so what
   * the log holds of its prompts, replies and confirmed data can no longer be read. Says
   * who asked (when is occurredAt) and how much was made unreadable.
   */
  ConversationErased: z.object({
    by: z.string().nullable(),
    /** `retention`: the scheduled job erased it (GEMELLO_RETENTION_DAYS). */
    via: z.enum(['api', 'cli', 'retention']),
    reason: z.string().nullable(),
    prompts: z.number().int().nonnegative(),
    replies: z.number().int().nonnegative(),
    confirmedFields: z.number().int().nonnegative(),
  }),
  ...FlowEventData,
} as const;

export type EventType = keyof typeof EventData;
export const EVENT_TYPES = Object.keys(EventData) as EventType[];

/**
 * Current schema version per event type. v2 of PromptReceived, DataConfirmed and
 * ReplyGenerated: their personal field may be sealed with the conversation's key
 * (events/codec.ts); v1 always held it in the clear, which v2 readers still accept.
 */
export const SCHEMA_VERSION: Record<EventType, number> = {
  ConversationStarted: 2,
  PromptReceived: 2,
  DataConfirmed: 2,
  ReplyGenerated: 2,
  DataProposed: 1,
  ReplyFailed: 1,
  ReplyStopped: 1,
  SpeechReceived: 1,
  SpeechFailed: 1,
  AudioReady: 1,
  AudioFailed: 1,
  ConversationErased: 1,
  ...FLOW_SCHEMA_VERSION,
};

export type EventDataOf<T extends EventType> = z.infer<(typeof EventData)[T]>;

/** A domain event before it gets its envelope: what `decide` returns. */
export type DomainEvent = { [T in EventType]: { type: T; data: EventDataOf<T> } }[EventType];

const envelopeFields = {
  eventId: z.string().uuid(),
  conversationId: z.string().min(1),
  seq: z.number().int().positive(),
  schemaVersion: z.number().int().positive(),
  occurredAt: z.string(),
  causationId: z.string().nullable(),
  correlationId: z.string().nullable(),
  traceparent: z.string().nullable(),
};

/** The envelope as stored, with any `data` (before upcasting). */
export const RawEnvelope = z.object({
  ...envelopeFields,
  type: z.enum(EVENT_TYPES as [EventType, ...EventType[]]),
  data: z.unknown(),
});
export type RawEnvelope = z.infer<typeof RawEnvelope>;

/** A stored event at its current schema version. */
export type EventEnvelope = {
  eventId: string;
  conversationId: string;
  seq: number;
  schemaVersion: number;
  occurredAt: string;
  causationId: string | null;
  correlationId: string | null;
  traceparent: string | null;
} & DomainEvent;

/** Where an event sits in the log. */
export type LogPosition = { partition: number; offset: number };

/** An event as read back from the log, with its position. */
export type LoggedEvent = EventEnvelope & { position: LogPosition };
