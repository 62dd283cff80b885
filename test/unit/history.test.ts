import { describe, expect, it } from 'vitest';
import { recentHistory } from '../../actors/effects.ts';
import type { Message } from '../../actors/state.ts';

const conversation = (pairs: number): Message[] =>
  Array.from({ length: pairs * 2 }, (_, i) => ({ seq: i + 2, role: i % 2 ? 'assistant' : 'user', content: `m${i + 2}` }));

describe('the history the model sees', () => {
  it('is the last messages up to the prompt, oldest first', () => {
    const msgs = conversation(30); // seq 2..61; prompts at even seqs
    const h = recentHistory(msgs, 40, 5);
    expect(h.map((m) => m.seq)).toEqual([36, 37, 38, 39, 40]);
    expect(h[h.length - 1]!.role).toBe('user');
  });

  it('is the whole conversation while it is shorter than the limit', () => {
    expect(recentHistory(conversation(3), 6, 40).map((m) => m.seq)).toEqual([2, 3, 4, 5, 6]);
  });

  it('leaves out what came after the prompt being answered (a prompt answered after a crash)', () => {
    expect(recentHistory(conversation(3), 4, 40).map((m) => m.seq)).toEqual([2, 3, 4]);
  });
});
