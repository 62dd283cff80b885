import type { Reply, ReplyModel, ReplyRequest } from '../actors/ports.ts';
import { clip, countWords } from './text.ts';

/** How much of the user's prompt the offline reply quotes back. */
const QUOTE_CHARS = 200;

export type OfflineReplyOptions = {
  /** Pause between the words of a streamed reply, so `npm start` shows streaming (0: none). */
  wordDelayMs?: number;
};

/** A ReplyModel without a network: its replies say plainly that no model is connected. Streamed word by word when asked. */
export function createOfflineReplyModel(options: OfflineReplyOptions = {}): ReplyModel {
  const wordDelayMs = options.wordDelayMs ?? 0;
  return {
    name: 'offline',
    async reply(request: ReplyRequest): Promise<Reply> {
      const last = [...request.history].reverse().find((m) => m.role === 'user');
      const said = last ? ` You said: "${clip(last.content.replace(/\s+/g, ' ').trim(), QUOTE_CHARS)}"` : '';
      const text = `[offline] ${request.twin.name} has no model connected (set OPENAI_API_KEY).${said}`;
      if (request.onText) {
        // Each word with the space before it, so the pieces add up to the text.
        for (const word of text.match(/\s*\S+/g) ?? []) {
          if (request.signal?.aborted) throw request.signal.reason ?? new Error('aborted');
          if (wordDelayMs > 0) await new Promise((r) => setTimeout(r, wordDelayMs));
          request.onText(word);
        }
      }
      const prompt = countWords(request.twin.systemPrompt) + request.history.reduce((n, m) => n + countWords(m.content), 0);
      const completion = countWords(text);
      return { text, model: 'offline', tokens: { prompt, completion, total: prompt + completion } };
    },
  };
}
