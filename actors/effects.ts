import { SpanKind } from '@opentelemetry/api';
import type { Tracer } from '@opentelemetry/api';
import type { Metrics } from '../telemetry/metrics.ts';
import { contextFrom, inSpan, traceparentOf } from '../telemetry/trace.ts';
import type { EffectCommand } from './commands.ts';
import { EffectError } from './ports.ts';
import type { AudioSink, ReplyModel, Speech, SpeechModel } from './ports.ts';
import type { ConversationState, Message } from './state.ts';
import type { TwinCatalog } from './twins.ts';

/** What a side effect produced: the command that records it, and the trace its events join. */
export type EffectOutcome = { command: EffectCommand; traceparent: string | null };

/** An effect called off before it had an outcome (its conversation was erased, its flow ended, its host let it go): nothing is recorded or retried. */
export class EffectCancelled extends Error {}

export type EffectWorkOptions = {
  replyModel: ReplyModel;
  speech: { model: SpeechModel; sink: AudioSink } | null;
  catalog: TwinCatalog;
  tracer: Tracer;
  /** The most recent messages the model sees with a prompt. */
  historyMessages: number;
  modelMs: ReturnType<Metrics['histogram']>;
  errors: ReturnType<Metrics['counter']>;
};

/**
 * The side effects of a conversation: the model's reply to a prompt and the speech of a
 * reply. Each turns the state into the command that records its outcome; a failure is an
 * outcome too (ReplyFailed, AudioFailed), so the conversation goes on. When they run and
 * how the outcome is recorded is the actor host's business.
 */
export function createEffectWork(options: EffectWorkOptions) {
  const { catalog, tracer, modelMs, errors } = options;
  return {
    /** The model's reply to the prompt at promptSeq; `live` can cancel it, and with `onText` streams its text. */
    async reply(conversationId: string, state: ConversationState, promptSeq: number, traceparent: string | null, live?: { signal: AbortSignal; onText?: (delta: string) => void }): Promise<EffectOutcome> {
      const twin = state.twin ? catalog.find(state.twin.id, undefined) : undefined;
      const t0 = performance.now();
      if (!twin) {
        return { command: { type: 'RecordReplyFailure', promptSeq, code: 'twin_not_found', reason: `twin ${state.twin?.id} is not in the catalog`, latencyMs: 0 }, traceparent };
      }
      const attributes = { 'conversation.id': conversationId, 'twin.id': twin.id, 'event.seq': promptSeq, 'gen_ai.request.model': twin.model };
      return inSpan(tracer, 'llm.chat', { parent: contextFrom(traceparent), attributes, kind: SpanKind.CLIENT }, async (_span, ctx) => {
        // The reply's events hang under the model call that produced them.
        const replyTrace = traceparentOf(ctx) ?? traceparent;
        try {
          const reply = await options.replyModel.reply({
            twin,
            history: recentHistory(state.messages, promptSeq, options.historyMessages),
            confirmedData: state.confirmedData,
            ...(live ? { signal: live.signal } : {}),
            ...(live?.onText ? { onText: live.onText } : {}),
          });
          const latencyMs = performance.now() - t0;
          modelMs.observe(latencyMs, { outcome: 'ok' });
          const { text, model, tokens, proposed } = reply;
          return { command: { type: 'RecordReply', promptSeq, text, model, tokens, latencyMs, audio: options.speech !== null, ...(proposed ? { proposed } : {}) }, traceparent: replyTrace };
        } catch (err) {
          const latencyMs = performance.now() - t0;
          // Stopped by the user: ReplyStopped answers the prompt, this outcome finds it no longer pending.
          if (live?.signal.aborted) return { command: { type: 'RecordReplyFailure', promptSeq, code: 'stopped', reason: 'stopped', latencyMs }, traceparent: replyTrace };
          modelMs.observe(latencyMs, { outcome: 'error' });
          const code = err instanceof EffectError ? err.code : 'model_error';
          errors.inc({ kind: code });
          return { command: { type: 'RecordReplyFailure', promptSeq, code, reason: (err as Error).message, latencyMs }, traceparent: replyTrace };
        }
      });
    },

    /**
     * The reply's speech, recorded in `traceparent` (the reply's: its prompt's trace); `spoken`:
     * its sentences' audio joined, when it was spoken while it streamed (synthesised again only if that failed).
     */
    async audio(state: ConversationState, replySeq: number, traceparent: string | null, spoken?: () => Promise<Speech | null | 'cancelled'>): Promise<EffectOutcome> {
      const speech = options.speech;
      const reply = state.messages.find((msg) => msg.seq === replySeq);
      const twin = state.twin ? catalog.find(state.twin.id, undefined) : undefined;
      if (!speech || !reply) return { command: { type: 'RecordAudioFailure', replySeq, reason: speech ? 'reply not found' : 'speech is disabled' }, traceparent };
      const voice = twin?.voiceId ?? 'alloy';
      try {
        const joined = spoken ? await spoken() : null;
        if (joined === 'cancelled') return { command: { type: 'RecordAudioFailure', replySeq, reason: 'stopped by the user while it was spoken' }, traceparent };
        const stored = await speech.sink.store({ text: reply.content, voice, synthesize: () => (joined ? Promise.resolve(joined) : speech.model.synthesize({ text: reply.content, voice })) });
        const { audioId, format, durationSec, bytes } = stored;
        return { command: { type: 'RecordAudio', replySeq, audioId, format, durationSec, bytes, voice }, traceparent };
      } catch (err) {
        errors.inc({ kind: err instanceof EffectError ? err.code : 'speech_failed' });
        return { command: { type: 'RecordAudioFailure', replySeq, reason: (err as Error).message }, traceparent };
      }
    },
  };
}

/** The last `max` messages up to the prompt at `promptSeq`, oldest first. */
export function recentHistory(messages: Message[], promptSeq: number, max: number): Message[] {
  let end = messages.length;
  while (end > 0 && messages[end - 1]!.seq > promptSeq) end--;
  return messages.slice(Math.max(0, end - max), end);
}
