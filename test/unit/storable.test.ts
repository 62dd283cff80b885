import { describe, expect, it } from 'vitest';
import { storableJson, storableText } from '../../projections/storable.ts';

describe('what PostgreSQL can store (projections/storable.ts)', () => {
  it('replaces U+0000 in text and leaves other text as it is', () => {
    expect(storableText('a\u0000b\u0000')).toBe('a\uFFFDb\uFFFD');
    expect(storableText('plain ∑ 😀 \ud800')).toBe('plain ∑ 😀 \ud800');
  });

  it('writes JSON whose strings hold neither U+0000 nor a lone surrogate, at any depth', () => {
    const value = { a: 'x\u0000y', b: [{ c: 'lone \udc00 low', d: 'pair 😀' }], e: 3, f: null };
    const text = storableJson(value);
    expect(text).not.toMatch(/\\u0000|\\ud[89a-f]/i);
    expect(JSON.parse(text)).toEqual({ a: 'x\uFFFDy', b: [{ c: 'lone \uFFFD low', d: 'pair 😀' }], e: 3, f: null });
  });

  it('writes JSON whose keys hold neither U+0000 nor a lone surrogate either, at any depth', () => {
    const value = { 'k\u0000ey': 1, nested: [{ 'lone \ud800': { 'deep\u0000': 'v\u0000' } }], plain: 'x' };
    const text = storableJson(value);
    expect(text).not.toMatch(/\\u0000|\\ud[89a-f]/i);
    expect(JSON.parse(text)).toEqual({ 'k\uFFFDey': 1, nested: [{ 'lone \uFFFD': { 'deep\uFFFD': 'v\uFFFD' } }], plain: 'x' });
  });

  it('is JSON.stringify for a value with nothing to replace', () => {
    const value = [{ a: 'tab\t, quote " and backslash \\', n: 1.5 }];
    expect(storableJson(value)).toBe(JSON.stringify(value));
  });
});
