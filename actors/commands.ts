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

/** Commands a client can cause, as they travel on `gemello.commands`. */
export const ClientCommand = z.discriminatedUnion('type', [
  z.object({ ...meta, type: z.literal('StartConversation'), data: z.object({ twin, metadata: z.record(z.string(), z.unknown()).default({}) }) }),
  z.object({ ...meta, type: z.literal('SubmitPrompt'), data: z.object({ twin, text: z.string().min(1) }) }),
  z.object({ ...meta, type: z.literal('ConfirmData'), data: z.object({ data: z.record(z.string(), z.unknown()) }) }),
]);
export type ClientCommand = z.infer<typeof ClientCommand>;

/**
 * Commands the host gives itself when a side effect finishes. They never travel on
 * Kafka: the pending work they complete is already durable as an event.
 */
export type EffectCommand =
  | { type: 'RecordReply'; promptSeq: number; text: string; model: string; tokens: { prompt: number; completion: number; total: number }; latencyMs: number; audio: boolean }
  | { type: 'RecordReplyFailure'; promptSeq: number; reason: string; code: string; latencyMs: number }
  | { type: 'RecordAudio'; replySeq: number; audioId: string; format: string; durationSec: number; bytes: number; voice: string }
  | { type: 'RecordAudioFailure'; replySeq: number; reason: string };

export type Command = ClientCommand | EffectCommand;

/** A command refused by the conversation: terminal, reaches the client with its code. */
export class DomainError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}
