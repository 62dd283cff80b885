import { describe, expect, it } from 'vitest';
import type { ReplyRequest } from '../../actors/ports.ts';
import { createOfflineReplyModel } from '../../models/offline-reply.ts';

const request = (prompt: string): ReplyRequest => ({
  twin: { id: 'buffett', name: 'Warren Buffett', systemPrompt: 'You are Warren Buffett.', model: 'gpt-4o-mini', voiceId: 'onyx' },
  history: [{ seq: 2, role: 'user', content: prompt }],
  confirmedData: {},
});

describe('offline reply model', () => {
  it('says plainly that it is offline, who is speaking, and what the user said', async () => {
    const reply = await createOfflineReplyModel().reply(request('Should I buy index funds?'));
    expect(reply.text).toBe(
      '[offline] Warren Buffett has no model connected (set OPENAI_API_KEY). You said: "Should I buy index funds?"',
    );
    expect(reply.model).toBe('offline');
  });

  it('counts tokens roughly by words', async () => {
    const reply = await createOfflineReplyModel().reply(request('one two three'));
    expect(reply.tokens.prompt).toBe(4 + 3); // system prompt + prompt
    expect(reply.tokens.completion).toBe(reply.text.split(' ').length);
    expect(reply.tokens.total).toBe(reply.tokens.prompt + reply.tokens.completion);
  });

  it('quotes only the start of a long prompt', async () => {
    const reply = await createOfflineReplyModel().reply(request('word '.repeat(1000)));
    expect(reply.text.length).toBeLessThan(320);
    expect(reply.text).toMatch(/…"$/);
  });

  it('answers the same prompt the same way', async () => {
    const model = createOfflineReplyModel();
    expect(await model.reply(request('hello'))).toEqual(await model.reply(request('hello')));
  });
});
