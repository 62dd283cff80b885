import type OpenAI from 'openai';
import { EffectError, type Reply, type ReplyModel, type ReplyRequest } from '../actors/ports.ts';
import { createOpenAIModelClient } from './openai-client.ts';
import { toEffectError } from './openai-errors.ts';

/** Options for createOpenAIReplyModel. */
export type OpenAIReplyOptions = {
  apiKey: string;
  /** OPENAI_BASE_URL: any OpenAI-compatible server; default api.openai.com. */
  baseURL?: string | undefined;
  /** Per attempt; default 30 s. */
  timeoutMs?: number | undefined;
  /** Retries after the first attempt, with exponential backoff; default 2. */
  maxRetries?: number | undefined;
};

type ChatMessage = OpenAI.Chat.Completions.ChatCompletionMessageParam;

/** A ReplyModel backed by chat completions on OpenAI or any compatible server. */
export function createOpenAIReplyModel(options: OpenAIReplyOptions): ReplyModel {
  const { client, failure } = createOpenAIModelClient('model', options);

  return {
    name: 'openai',
    async reply(request: ReplyRequest): Promise<Reply> {
      let completion: OpenAI.Chat.Completions.ChatCompletion;
      try {
        completion = await client.chat.completions.create(
          { model: request.twin.model, messages: toMessages(request) },
          { signal: request.signal },
        );
      } catch (err) {
        throw toEffectError(err, failure);
      }
      const text = completion.choices?.[0]?.message?.content?.trim() ?? '';
      if (text === '') {
        throw new EffectError('model_empty', `${request.twin.model} at ${client.baseURL} returned no text`, false);
      }
      const usage = completion.usage;
      return {
        text,
        model: completion.model || request.twin.model,
        tokens: {
          prompt: usage?.prompt_tokens ?? 0,
          completion: usage?.completion_tokens ?? 0,
          total: usage?.total_tokens ?? 0,
        },
      };
    },
  };
}

/** The twin's system prompt (plus the confirmed data, so the model can use it), then the history. */
function toMessages(request: ReplyRequest): ChatMessage[] {
  let system = request.twin.systemPrompt;
  const missing = (request.twin.fields ?? []).filter((f) => !(f.name in request.confirmedData));
  if (missing.length > 0) {
    // The twin collects these in the dialogue; the user confirms them in the client.
    system += `\n\nIn the conversation, politely collect: ${missing.map((f) => `${f.name} (${f.type}${f.description ? `, ${f.description}` : ''})`).join('; ')}.`;
  }
  if (Object.keys(request.confirmedData).length > 0) {
    system += `\n\nData the user has confirmed (JSON): ${JSON.stringify(request.confirmedData)}`;
  }
  return [
    { role: 'system', content: system },
    ...request.history.map((m): ChatMessage => ({ role: m.role, content: m.content })),
  ];
}
