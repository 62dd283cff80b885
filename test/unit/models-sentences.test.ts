import { describe, expect, it } from 'vitest';
import { createSentenceSplitter } from '../../models/sentences.ts';
import type { Sentence } from '../../models/sentences.ts';

/** Feeds the text in pieces of `size` characters; returns every sentence, the last from flush. */
function split(text: string, size: number): Sentence[] {
  const sp = createSentenceSplitter();
  const out: Sentence[] = [];
  for (let i = 0; i < text.length; i += size) out.push(...sp.push(text.slice(i, i + size)));
  const rest = sp.flush();
  return rest ? [...out, rest] : out;
}

describe('sentences of a streaming reply', () => {
  const reply = 'Price is what you pay. Value is what you get! Is it "cheap?" Mr. Buffett said so… Then he left.';

  it('finishes a sentence as soon as the white space after its end arrives, whatever the pieces', () => {
    for (const size of [1, 3, 7, 1000]) {
      const s = split(reply, size);
      expect(s.map((x) => x.text)).toEqual(['Price is what you pay.', 'Value is what you get!', 'Is it "cheap?"', 'Mr. Buffett said so…', 'Then he left.']);
      for (const x of s) expect(reply.slice(x.offset, x.offset + x.text.length)).toBe(x.text);
    }
  });

  it('hands a sentence out before the reply goes on', () => {
    const sp = createSentenceSplitter();
    expect(sp.push('Hello there, my friend.')).toEqual([]);
    expect(sp.push(' And')).toEqual([{ text: 'Hello there, my friend.', offset: 0 }]);
    expect(sp.flush()).toEqual({ text: 'And', offset: 24 });
  });

  it('cuts a sentence without an end at a comma once it is long, and keeps a line break as an end', () => {
    const long = `${'word, '.repeat(60)}end`;
    const s = split(long, 5);
    expect(s.length).toBeGreaterThan(1);
    expect(s.every((x) => x.text.length <= 240)).toBe(true);
    expect(s.map((x) => x.text).join(' ')).toBe(long);
    expect(split('A list of things\n- one thing here\n', 4).map((x) => x.text)).toEqual(['A list of things', '- one thing here']);
  });

  it('returns nothing for white space alone', () => {
    expect(split('   ', 1)).toEqual([]);
  });
});
