import OpenAI, { APIError } from 'openai';
import { EffectError, type Reply, type ReplyModel, type ReplyRequest, type Twin } from '../actors/ports.ts';
import { createOpenAIModelClient, type ModelTransport } from './openai-client.ts';
import { toEffectError } from './openai-errors.ts';
import { proposalFormat, readProposals } from './proposals.ts';
import { createDeltaEmitter, createReplyReader } from './reply-stream.ts';

/** Options for createOpenAIReplyModel. */
export type OpenAIReplyOptions = {
  apiKey: string;
  /** OPENAI_BASE_URL: any OpenAI-compatible server; default api.openai.com. */
  baseURL?: string | undefined;
  /** Per attempt; default 30 s. */
  timeoutMs?: number | undefined;
  /** Retries after the first attempt, with exponential backoff; default 2. */
  maxRetries?: number | undefined;
  /** How requests travel (default `node-http` on Node); see ModelTransport. */
  transport?: ModelTransport | undefined;
  /** Told when structured output is refused and the model is asked in plain text instead. */
  warn?: ((message: string) => void) | undefined;
};

type ChatMessage = OpenAI.Chat.Completions.ChatCompletionMessageParam;
type Completion = Pick<OpenAI.Chat.Completions.ChatCompletion, 'model' | 'usage'> & { content: string };

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
    const body = { model: request.twin.model, messages: toMessages(request, format !== null), ...(format ? { response_format: format } : {}) };
    if (!request.onText) {
      const c = await client.chat.completions.create(body, { signal: request.signal });
      const message = c.choices?.[0]?.message;
      return { model: c.model, usage: c.usage, content: message?.content ?? message?.refusal ?? '' };
    }
    // Streamed: the text reaches the user as it comes; with structured output only the
    // `reply` string of the JSON is shown. Aborting the signal closes the HTTP request.
    const stream = await client.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } }, { signal: request.signal });
    const emit = createDeltaEmitter(request.onText);
    const replySoFar = createReplyReader();
    let content = '';
    let model = '';
    let usage: Completion['usage'];
    for await (const chunk of stream) {
      model ||= chunk.model;
      if (chunk.usage) usage = chunk.usage;
      const piece = chunk.choices?.[0]?.delta?.content ?? chunk.choices?.[0]?.delta?.refusal ?? '';
      if (!piece) continue;
      content += piece;
      const shown = structured ? replySoFar(content) : content;
      if (shown !== null) emit.update(shown);
    }
    // An aborted stream just ends: what came so far is not a reply.
    if (request.signal?.aborted) throw new EffectError('model_stopped', 'the reply was stopped', false);
    return { model, usage, content };
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
          const refused = structured ? refusedFormat(err) : null;
          if (!refused) throw err;
          // A model without structured output is not asked again; a schema the server
          // refused (a twin's fields) is this twin's problem, so only this request goes plain.
          if (refused === 'unsupported') plainOnly.add(request.twin.model);
          options.warn?.(`${request.twin.model} refused structured output (${(err as Error).message.replace(/^400 /, '')}); ${refused === 'unsupported' ? 'asking it in plain text from now on' : `asking in plain text for twin ${request.twin.id}`}: no values are proposed`);
          structured = false;
          completion = await complete(request, false);
        }
      } catch (err) {
        throw toEffectError(err, failure);
      }
      const content = completion.content.trim();
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

/**
 * A 400 that blames the response format: `unsupported` when the model or server has no
 * structured output, `schema` when it refused this schema; null for any other failure.
 */
function refusedFormat(err: unknown): 'unsupported' | 'schema' | null {
  if (!(err instanceof APIError) || err.status !== 400) return null;
  const param = (err as { param?: unknown }).param;
  if (param !== 'response_format' && !/response_format|json_schema|structured output/i.test(err.message)) return null;
  return /not supported|unsupported|does not support/i.test(err.message) ? 'unsupported' : 'schema';
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
