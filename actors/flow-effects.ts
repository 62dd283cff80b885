import { Buffer } from 'node:buffer';
import type { CompiledFlow } from '../flows/compile.ts';
import type { FlowState } from '../flows/state.ts';
import { lookup, render, renderJson } from '../flows/templates.ts';
import type { EffectCommand } from './commands.ts';

/** Where a flow's side effects go: backends by name, and the email / SMS webhooks (configuration, never the flow). */
export type FlowEffectsOptions = {
  backends: Record<string, string>;
  emailWebhook: string | null;
  smsWebhook: string | null;
  /** Base of the exponential backoff between attempts (default 200 ms). */
  backoffMs?: number;
  fetch?: typeof fetch;
};

type Outcome = Extract<EffectCommand, { type: 'RecordFlowEffect' }>;

/** The largest answer a flow keeps (it is recorded in the log, whose records are at most 1 MB). */
export const MAX_RESULT_BYTES = 256 * 1024;

/** The header every call carries: the same for every attempt and every host, so the far side can drop repeats. */
export const IDEMPOTENCY_HEADER = 'Idempotency-Key';

/**
 * Makes the side effect a flow waits on: a backend call, or an email or SMS through its
 * webhook. Attempts are retried on a network error, a timeout, 429 or 5xx, with the same
 * idempotency key, so a call made again (a retry, or a host that took the conversation
 * over after a crash) is one call for a backend that honours the key. The outcome is a
 * command: the actor host records it.
 */
export function createFlowEffects(options: FlowEffectsOptions) {
  const doFetch = options.fetch ?? fetch;
  const backoffMs = options.backoffMs ?? 200;
  return {
    async run(flow: CompiledFlow, state: FlowState, now: () => Date, signal?: AbortSignal): Promise<Outcome> {
      const effect = state.effect!;
      const task = flow.byId[effect.task]!;
      const vars = (path: string) => lookup(state.memory, path);
      let target: { backend: string; url: string | null; method: string; body: unknown; timeoutMs: number; retries: number };
      if (task.type === 'backendCall') {
        const base = options.backends[task.backend];
        target = { backend: task.backend, url: base ? base + render(task.path, vars, (v) => encodeURIComponent(String(v))) : null, method: task.method, body: task.body === undefined ? undefined : renderJson(task.body, vars), timeoutMs: task.timeoutMs, retries: task.retries };
      } else if (task.type === 'sendEmail') {
        target = { backend: 'email', url: options.emailWebhook, method: 'POST', body: { to: render(task.to, vars), subject: render(task.subject, vars), text: render(task.text, vars) }, timeoutMs: 5_000, retries: 2 };
      } else if (task.type === 'sendSms') {
        target = { backend: 'sms', url: options.smsWebhook, method: 'POST', body: { to: render(task.to, vars), text: render(task.text, vars) }, timeoutMs: 5_000, retries: 2 };
      } else throw new Error(`task ${task.id} (${task.type}) has no side effect`);
      const t0 = performance.now();
      const done = (o: Omit<Outcome, 'type' | 'key' | 'backend' | 'latencyMs' | 'at'>): Outcome => ({ type: 'RecordFlowEffect', key: effect.key, backend: target.backend, latencyMs: performance.now() - t0, at: now().toISOString(), ...o });
      if (!target.url) return done({ status: 'error', httpStatus: null, attempts: 0, result: null, error: `${target.backend} is not configured in this deployment` });
      let last = '';
      for (let attempt = 1; attempt <= target.retries + 1; attempt++) {
        if (signal?.aborted) throw new Error('stopped');
        try {
          const res = await doFetch(target.url, {
            method: target.method,
            headers: { 'content-type': 'application/json', accept: 'application/json', [IDEMPOTENCY_HEADER]: effect.key },
            body: target.body === undefined || target.method === 'GET' ? undefined : JSON.stringify(target.body),
            signal: signal ? AbortSignal.any([signal, AbortSignal.timeout(target.timeoutMs)]) : AbortSignal.timeout(target.timeoutMs),
          });
          const text = await res.text();
          // The result goes into the log (BackendCalled): an answer too large for a record would never be recorded.
          const bytes = Buffer.byteLength(text, 'utf8');
          if (bytes > MAX_RESULT_BYTES) return done({ status: 'error', httpStatus: res.status, attempts: attempt, result: null, error: `the answer was ${bytes} bytes; a flow keeps at most ${MAX_RESULT_BYTES}` });
          let result: unknown = text.length ? text : null;
          try {
            if (text.length) result = JSON.parse(text);
          } catch {
            // not JSON: kept as text
          }
          if (res.ok) return done({ status: 'ok', httpStatus: res.status, attempts: attempt, result, error: null });
          last = `HTTP ${res.status}`;
          if (res.status !== 429 && res.status < 500) return done({ status: 'error', httpStatus: res.status, attempts: attempt, result, error: last });
          if (attempt > target.retries) return done({ status: 'error', httpStatus: res.status, attempts: attempt, result, error: last });
        } catch (err) {
          if (signal?.aborted) throw err;
          last = (err as Error).name === 'TimeoutError' ? `no answer within ${target.timeoutMs} ms` : (err as Error).message;
        }
        if (attempt <= target.retries) await new Promise((r) => setTimeout(r, backoffMs * 2 ** (attempt - 1)));
      }
      return done({ status: 'error', httpStatus: null, attempts: target.retries + 1, result: null, error: last });
    },
  };
}

export type FlowEffects = ReturnType<typeof createFlowEffects>;
