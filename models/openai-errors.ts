import { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai';
import { EffectError } from '../actors/ports.ts';

/** What toEffectError needs to say where and how hard it tried. */
export type FailureContext = {
  /** `model` for replies, `speech` for audio, `stt` for speech to text: the prefix of every code. */
  prefix: 'model' | 'speech' | 'stt';
  baseURL: string;
  timeoutMs: number;
  /** Attempts made before giving up: 1 + maxRetries. */
  attempts: number;
};

/** Statuses the SDK itself retries; failures with them stay retryable. */
const RETRIED_STATUSES = new Set([408, 409, 429]);

/**
 * Maps an SDK failure to an EffectError with a code (`<prefix>_timeout`,
 * `<prefix>_http_<status>`, `<prefix>_unreachable`, `<prefix>_aborted`) and a reason a person can act on.
 */
export function toEffectError(err: unknown, ctx: FailureContext): EffectError {
  if (err instanceof EffectError) return err;
  const tries = ctx.attempts === 1 ? '1 attempt' : `${ctx.attempts} attempts`;
  // Order matters: the timeout and abort errors are subclasses of APIError.
  if (err instanceof APIUserAbortError) {
    return new EffectError(`${ctx.prefix}_aborted`, `the ${ctx.prefix} request to ${ctx.baseURL} was cancelled`, false);
  }
  if (err instanceof APIConnectionTimeoutError) {
    return new EffectError(
      `${ctx.prefix}_timeout`,
      `${ctx.baseURL} did not answer within ${ctx.timeoutMs} ms (${tries})`,
      true,
    );
  }
  if (err instanceof APIConnectionError) {
    const cause = err.cause instanceof Error ? `: ${describeCause(err.cause)}` : '';
    return new EffectError(`${ctx.prefix}_unreachable`, `cannot reach ${ctx.baseURL}${cause} (${tries})`, true);
  }
  if (err instanceof APIError && typeof err.status === 'number') {
    const status = err.status;
    const retryable = status >= 500 || RETRIED_STATUSES.has(status);
    const detail = err.message.replace(/^\d{3} /, ''); // the SDK prefixes its message with the status
    return new EffectError(
      `${ctx.prefix}_http_${status}`,
      `${ctx.baseURL} answered HTTP ${status}${hint(status)}: ${detail}${retryable ? ` (${tries})` : ''}`,
      retryable,
    );
  }
  const message = err instanceof Error ? err.message : String(err);
  return new EffectError(`${ctx.prefix}_failed`, `${ctx.prefix} call to ${ctx.baseURL} failed: ${message}`, false);
}

function hint(status: number): string {
  if (status === 401) return ' (check OPENAI_API_KEY)';
  if (status === 404) return ' (unknown model, or OPENAI_BASE_URL lacks /v1?)';
  if (status === 429) return ' (rate limited or out of quota)';
  return '';
}

/** undici wraps the useful part ("ECONNREFUSED 127.0.0.1:1") one level down. */
function describeCause(cause: Error): string {
  const inner = (cause as { cause?: unknown }).cause;
  if (inner instanceof Error && inner.message) return inner.message;
  return cause.message;
}
