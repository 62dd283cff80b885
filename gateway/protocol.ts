import { z } from 'zod';

/** The largest text frame accepted; larger ones get `frame_too_large`. */
export const MAX_FRAME_BYTES = 64 * 1024;
export const MAX_PROMPT_CHARS = 8_000;

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
}).refine((f) => f.digitalTwinId !== undefined || f.digitalTwinName !== undefined, { message: 'digitalTwinId or digitalTwinName is required' });

const jsonValue: z.ZodType<unknown> = z.lazy(() => z.union([z.string().max(10_000), z.number(), z.boolean(), z.null(), z.array(jsonValue).max(100), z.record(z.string().max(100), jsonValue)]));

export const ConfirmFrame = z.strictObject({
  type: z.literal('confirm'),
  conversationId: id,
  data: z.record(z.string().min(1).max(100), jsonValue).refine((d) => Object.keys(d).length > 0 && Object.keys(d).length <= 50, { message: 'data must have 1 to 50 fields' }),
  requestId,
});

export const ResumeFrame = z.strictObject({
  type: z.literal('resume'),
  conversationId: id,
  afterSeq: z.number().int().min(0).default(0),
  requestId,
});

export type PromptFrame = z.infer<typeof PromptFrame>;
export type ConfirmFrame = z.infer<typeof ConfirmFrame>;
export type ResumeFrame = z.infer<typeof ResumeFrame>;
export type ClientFrame = (PromptFrame & { type?: 'prompt' }) | ConfirmFrame | ResumeFrame;

/** Error codes a client can get, each with what it means. */
export const ERROR_CODES = {
  bad_json: 'the frame is not JSON',
  binary_frame: 'binary frames are not accepted; send JSON text',
  frame_too_large: `frames are limited to ${MAX_FRAME_BYTES} bytes`,
  invalid_frame: 'the frame does not match the protocol',
  unknown_type: 'type must be prompt, confirm or resume',
  twin_not_found: 'no such digital twin',
  rate_limited: 'too many frames; slow down',
  unavailable: 'the log is not reachable; try again',
  model_failed: 'the model did not answer',
  forbidden: 'the conversation belongs to someone else',
  conversation_not_found: 'no such conversation',
  twin_mismatch: 'the conversation talks to another twin',
  conversation_exists: 'the conversation already exists',
  invalid_data: 'nothing to confirm',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES | (string & {});

/** Parses one text frame; returns the frame or an error code with a message. */
export function parseFrame(text: string): { ok: true; frame: ClientFrame } | { ok: false; code: ErrorCode; error: string; requestId?: string } {
  if (text.length > MAX_FRAME_BYTES) return { ok: false, code: 'frame_too_large', error: ERROR_CODES.frame_too_large };
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
  const rid = typeof obj.requestId === 'string' && obj.requestId.length <= 200 ? obj.requestId : undefined;
  const schema = obj.type === undefined || obj.type === 'prompt' ? PromptFrame : obj.type === 'confirm' ? ConfirmFrame : obj.type === 'resume' ? ResumeFrame : null;
  if (!schema) return { ok: false, code: 'unknown_type', error: ERROR_CODES.unknown_type, requestId: rid };
  const parsed = (schema as z.ZodType<ClientFrame>).safeParse(obj);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.length ? `${issue.path.join('.')}: ` : '';
    return { ok: false, code: 'invalid_frame', error: `${where}${issue?.message ?? 'invalid'}`, requestId: rid };
  }
  return { ok: true, frame: parsed.data };
}
