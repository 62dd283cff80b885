import type { Reply, ReplyModel, ReplyRequest } from '../actors/ports.ts';
import { clip, countWords } from './text.ts';

/** How much of the user's prompt the offline reply quotes back. */
const QUOTE_CHARS = 200;

/** A ReplyModel without a network: its replies say plainly that no model is connected. */
export function createOfflineReplyModel(): ReplyModel {
  return {
    name: 'offline',
    async reply(request: ReplyRequest): Promise<Reply> {
      const last = [...request.history].reverse().find((m) => m.role === 'user');
      const said = last ? ` You said: "${clip(last.content.replace(/\s+/g, ' ').trim(), QUOTE_CHARS)}"` : '';
      const text = `[offline] ${request.twin.name} has no model connected (set OPENAI_API_KEY).${said}`;
      const prompt = countWords(request.twin.systemPrompt) + request.history.reduce((n, m) => n + countWords(m.content), 0);
      const completion = countWords(text);
      return { text, model: 'offline', tokens: { prompt, completion, total: prompt + completion } };
    },
  };
}
