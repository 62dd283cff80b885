import { z } from 'zod';

/** The largest text frame accepted; larger ones get `frame_too_large`. */
export const MAX_FRAME_BYTES = 64 * 1024;
/** Past this a frame is not answered but closes the socket (1009, "message too big"). */
export const MAX_PAYLOAD_BYTES = 16 * MAX_FRAME_BYTES;
export const MAX_PROMPT_CHARS = 8_000;
/** The deepest nesting of objects and arrays a frame may have (the frame itself is depth 1). */
export const MAX_DEPTH = 16;

const id = z.string().min(1).max(200);
const requestId = z.string().min(1).max(200).optional();

/** A prompt: the seed's frame, where `type` may be absent. */
export const PromptFrame = z.strictObject({
  type: z.literal('prompt').optional(),
  digitalTwinId: id.optional(),
  digitalTwinName: id.optional(),
  prompt: z.string().trim().min(1, 'prompt is empty').max(MAX_PROMPT_CHARS, `prompt is longer than ${MAX_PROMPT_CHARS} characters`),
  conversationId: id.optional(),
  requestId,
  userId: id.optional(),
  /** Ask for `reply.delta` frames while the model writes the reply. */
  stream: z.boolean().optional(),
}).refine((f) => f.digitalTwinId !== undefined || f.digitalTwinName !== undefined, { message: 'digitalTwinId or digitalTwinName is required' });

const jsonValue: z.ZodType<unknown> = z.lazy(() => z.union([z.string().max(10_000), z.number(), z.boolean(), z.null(), z.array(jsonValue).max(100), z.record(z.string().max(100), jsonValue)]));

export const ConfirmFrame = z.strictObject({
  type: z.literal('confirm'),
  conversationId: id,
  /** Absent: confirm the values the model proposed. */
  data: z.record(z.string().min(1).max(100), jsonValue).refine((d) => Object.keys(d).length > 0 && Object.keys(d).length <= 50, { message: 'data must have 1 to 50 fields' }).optional(),
  /** Without data: the seq of the `data.proposed` the user confirms. */
  proposalSeq: z.number().int().positive().optional(),
  requestId,
});

/** The highest seq a conversation can reach (the read model's seq columns are 32-bit). */
export const MAX_SEQ = 2_147_483_647;

export const ResumeFrame = z.strictObject({
  type: z.literal('resume'),
  conversationId: id,
  afterSeq: z.number().int().min(0).max(MAX_SEQ).default(0),
  requestId,
});

/** Stops the reply in flight; `heardChars`: how much of the reply the user heard or read (the history keeps that much). */
export const StopFrame = z.strictObject({
  type: z.literal('stop'),
  conversationId: id,
  heardChars: z.number().int().min(0).optional(),
  requestId,
});

/**
 * The start of an utterance: binary frames with its audio follow, then `audio.end`. `format`
 * names the container (wav, mp3, webm, ogg, m4a, mp4, mpeg, mpga, flac; a MIME type such as
 * `audio/webm;codecs=opus` is read too) or `pcm16` (raw 16-bit little-endian mono at `sampleRate`).
 */
export const AudioStartFrame = z.strictObject({
  type: z.literal('audio.start'),
  digitalTwinId: id.optional(),
  digitalTwinName: id.optional(),
  conversationId: id.optional(),
  format: z.string().min(1).max(100),
  sampleRate: z.number().int().min(8_000).max(192_000).optional(),
  requestId,
  userId: id.optional(),
  stream: z.boolean().optional(),
}).refine((f) => f.digitalTwinId !== undefined || f.digitalTwinName !== undefined, { message: 'digitalTwinId or digitalTwinName is required' });

/** The end of the utterance the last `audio.start` opened: it is transcribed and answered as a prompt. */
export const AudioEndFrame = z.strictObject({
  type: z.literal('audio.end'),
  requestId,
});

export type PromptFrame = z.infer<typeof PromptFrame>;
export type AudioStartFrame = z.infer<typeof AudioStartFrame>;
export type AudioEndFrame = z.infer<typeof AudioEndFrame>;
export type StopFrame = z.infer<typeof StopFrame>;
export type ConfirmFrame = z.infer<typeof ConfirmFrame>;
export type ResumeFrame = z.infer<typeof ResumeFrame>;
export type ClientFrame = (PromptFrame & { type?: 'prompt' }) | ConfirmFrame | ResumeFrame | StopFrame | AudioStartFrame | AudioEndFrame;

/** Error codes a client can get, each with what it means. */
export const ERROR_CODES = {
  bad_json: 'the frame is not JSON',
  binary_frame: 'binary frames carry audio only between audio.start and audio.end; send JSON text',
  frame_too_large: `frames are limited to ${MAX_FRAME_BYTES} bytes`,
  invalid_frame: 'the frame does not match the protocol',
  unknown_type: 'type must be prompt, confirm, resume, stop, audio.start or audio.end',
  twin_not_found: 'no such digital twin',
  rate_limited: 'too many frames; slow down',
  unavailable: 'the log is not reachable; try again',
  model_failed: 'the model did not answer',
  forbidden: 'the conversation belongs to someone else',
  conversation_not_found: 'no such conversation',
  twin_mismatch: 'the conversation talks to another twin',
  conversation_exists: 'the conversation already exists',
  invalid_data: 'nothing to confirm',
  stale_proposal: 'a newer proposal replaced the one confirmed; confirm that one',
  conversation_erased: 'the conversation was erased; start a new one',
  nothing_to_stop: 'no reply is in flight',
  reply_stopped: 'the reply was stopped before it was done (a stop from another socket)',
  internal: 'the actor host could not take the command (it logged why); the conversation\'s other commands go on',
  audio_too_long: 'the utterance is longer or larger than this gateway takes',
  audio_format: 'the audio format is not one this gateway reads',
  audio_sequence: 'audio frames out of order: audio.start, binary frames, then audio.end',
  stt_unavailable: 'speech to text is not configured',
  stt_failed: 'the utterance could not be transcribed',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES | (string & {});

/**
 * Checks what zod cannot check cheaply, without recursion: nesting depth (a 10k-deep frame
 * would overflow the stack of a recursive validator) and that every string and key is
 * well-formed Unicode without NUL. `"\ud800"` is valid JSON, but no Postgres text or JSONB
 * column can hold a lone surrogate or U+0000, so such a string would poison every
 * projection of the log it reached.
 */
function inspect(json: unknown): string | null {
  const stack: Array<[unknown, number]> = [[json, 1]];
  while (stack.length) {
    const [value, depth] = stack.pop()!;
    if (typeof value === 'string') {
      if (!clean(value)) return BAD_TEXT;
    } else if (typeof value === 'object' && value !== null) {
      if (depth > MAX_DEPTH) return `objects and arrays may nest at most ${MAX_DEPTH} deep`;
      if (Array.isArray(value)) for (const v of value) stack.push([v, depth + 1]);
      else {
        for (const [k, v] of Object.entries(value)) {
          if (!clean(k)) return BAD_TEXT;
          // JSON.parse makes it an own key, but validators and spreads drop or misread it.
          if (k === '__proto__') return 'the key __proto__ is not allowed';
          stack.push([v, depth + 1]);
        }
      }
    }
  }
  return null;
}

const BAD_TEXT = 'strings must be well-formed Unicode without NUL characters';
const clean = (s: string) => s.isWellFormed() && !s.includes('\u0000');

/** What is wrong with a conversation id from a URL (null: nothing), by the rules a frame's conversationId follows. */
export function conversationIdProblem(conversationId: string): string | null {
  if (!id.safeParse(conversationId).success) return 'a conversation id is 1 to 200 characters';
  return clean(conversationId) ? null : 'a conversation id must be well-formed Unicode without NUL characters';
}

/** What is wrong with an audio id from a URL (null: nothing): the same rules as a conversation id's. */
export function audioIdProblem(audioId: string): string | null {
  return conversationIdProblem(audioId)?.replace('a conversation id', 'an audio id') ?? null;
}

const encoder = new TextEncoder();
/** UTF-8 length, computed only when the UTF-16 length leaves it in doubt. */
const over = (text: string, max: number) => text.length > max || (text.length * 3 > max && encoder.encode(text).byteLength > max);
const tooLarge = (text: string) => over(text, MAX_FRAME_BYTES);

/** Whether a frame (text, or binary of `bytes`) is past MAX_PAYLOAD_BYTES: the socket is closed with 1009. */
export const pastPayloadLimit = (data: string | number) => (typeof data === 'string' ? over(data, MAX_PAYLOAD_BYTES) : data > MAX_PAYLOAD_BYTES);

/**
 * The requestId of a frame that is refused before it is read (rate limit), so the client
 * can tell which one: a frame too large to parse has none.
 */
export function peekRequestId(text: string): string | undefined {
  if (tooLarge(text) || !text.includes('requestId')) return undefined;
  try {
    const r = (JSON.parse(text) as { requestId?: unknown } | null)?.requestId;
    return typeof r === 'string' && r.length > 0 && r.length <= 200 && clean(r) ? r : undefined;
  } catch {
    return undefined;
  }
}

/** Parses one text frame; returns the frame or an error code with a message. Never throws. */
export function parseFrame(text: string): { ok: true; frame: ClientFrame } | { ok: false; code: ErrorCode; error: string; requestId?: string } {
  if (tooLarge(text)) return { ok: false, code: 'frame_too_large', error: ERROR_CODES.frame_too_large };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { ok: false, code: 'bad_json', error: ERROR_CODES.bad_json };
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    return { ok: false, code: 'invalid_frame', error: 'a frame is a JSON object' };
  }
  const obj = json as Record<string, unknown>;
  const bad = inspect(obj);
  const rid = typeof obj.requestId === 'string' && obj.requestId.length <= 200 && clean(obj.requestId) ? obj.requestId : undefined;
  if (bad) return { ok: false, code: 'invalid_frame', error: bad, requestId: rid };
  const schema = obj.type === undefined || obj.type === 'prompt' ? PromptFrame : obj.type === 'confirm' ? ConfirmFrame : obj.type === 'resume' ? ResumeFrame : obj.type === 'stop' ? StopFrame
    : obj.type === 'audio.start' ? AudioStartFrame : obj.type === 'audio.end' ? AudioEndFrame : null;
  if (!schema) return { ok: false, code: 'unknown_type', error: ERROR_CODES.unknown_type, requestId: rid };
  let parsed: ReturnType<z.ZodType<ClientFrame>['safeParse']>;
  try {
    parsed = (schema as z.ZodType<ClientFrame>).safeParse(obj);
  } catch (err) {
    // A validator that throws must not take the socket (or the process) down with it.
    return { ok: false, code: 'invalid_frame', error: `could not validate the frame: ${(err as Error).message}`, requestId: rid };
  }
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.length ? `${issue.path.join('.')}: ` : '';
    return { ok: false, code: 'invalid_frame', error: `${where}${issue?.message ?? 'invalid'}`, requestId: rid };
  }
  return { ok: true, frame: parsed.data };
}
