import OpenAI, { APIError } from 'openai';
import { EffectError, type Reply, type ReplyModel, type ReplyRequest, type Twin } from '../actors/ports.ts';
import { createOpenAIModelClient } from './openai-client.ts';
import { toEffectError } from './openai-errors.ts';
import { proposalFormat, readProposals } from './proposals.ts';

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
type Completion = OpenAI.Chat.Completions.ChatCompletion;

/**
 * A ReplyModel backed by chat completions on OpenAI or any compatible server. For a twin
 * that collects fields it asks for structured output (`{reply, proposed}` by JSON schema)
 * so the model can propose values; a model or server that refuses the schema (HTTP 400
 * naming response_format) is asked again in plain text, and not asked for a schema again.
 */
export function createOpenAIReplyModel(options: OpenAIReplyOptions): ReplyModel {
  const { client, failure } = createOpenAIModelClient('model', options);
  /** Models whose server refused a JSON schema response format. */
  const plainOnly = new Set<string>();

  const complete = async (request: ReplyRequest, structured: boolean): Promise<Completion> => {
    const format = structured ? proposalFormat(request.twin.fields ?? []) : null;
    return client.chat.completions.create(
      { model: request.twin.model, messages: toMessages(request, format !== null), ...(format ? { response_format: format } : {}) },
      { signal: request.signal },
    );
  };

  return {
    name: 'openai',
    async reply(request: ReplyRequest): Promise<Reply> {
      let structured = (request.twin.fields ?? []).length > 0 && !plainOnly.has(request.twin.model);
      let completion: Completion;
      try {
        try {
          completion = await complete(request, structured);
        } catch (err) {
          if (!structured || !refusedFormat(err)) throw err;
          plainOnly.add(request.twin.model);
          structured = false;
          completion = await complete(request, false);
        }
      } catch (err) {
        throw toEffectError(err, failure);
      }
      const message = completion.choices?.[0]?.message;
      const content = (message?.content ?? message?.refusal ?? '').trim();
      const { text, proposed } = structured ? readProposals(content, request.twin.fields ?? []) : { text: content, proposed: {} };
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
        ...(Object.keys(proposed).length > 0 ? { proposed } : {}),
      };
    },
  };
}

/** A 400 that blames the response format: the model or server has no structured output. */
function refusedFormat(err: unknown): boolean {
  if (!(err instanceof APIError) || err.status !== 400) return false;
  const param = (err as { param?: unknown }).param;
  return param === 'response_format' || /response_format|json_schema|structured output/i.test(err.message);
}

/** The twin's system prompt (plus the confirmed data, so the model can use it), then the history. */
function toMessages(request: ReplyRequest, structured: boolean): ChatMessage[] {
  return [
    { role: 'system', content: systemPrompt(request.twin, request.confirmedData, structured) },
    ...request.history.map((m): ChatMessage => ({ role: m.role, content: m.content })),
  ];
}

function systemPrompt(twin: Twin, confirmedData: Record<string, unknown>, structured: boolean): string {
  let system = twin.systemPrompt;
  const missing = (twin.fields ?? []).filter((f) => !(f.name in confirmedData));
  if (missing.length > 0) {
    // The twin collects these in the dialogue; the user confirms them in the client.
    system += `\n\nIn the conversation, politely collect: ${missing.map((f) => `${f.name} (${f.type}${f.description ? `, ${f.description}` : ''})`).join('; ')}.`;
  }
  if (structured) {
    system += '\n\nAnswer in JSON: "reply" is what you say to the user; "proposed" holds, for each field, the value the user has stated in the conversation, or null when they have not.';
  }
  if (Object.keys(confirmedData).length > 0) {
    system += `\n\nData the user has confirmed (JSON): ${JSON.stringify(confirmedData)}`;
  }
  return system;
}
