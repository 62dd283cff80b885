// open() decodes into buffers it reuses from call to call (sealing/seal.ts), and into buffers
// of their own for content or contexts too long for them: every size must open, and only
// with its own key and context.
import { describe, expect, it } from 'vitest';
import { newDataKey, open, seal } from '../../sealing/seal.ts';

const text = (n: number) => Array.from({ length: n }, (_, i) => 'abcdefghijklmnopqrstuvwxyz é€'[i % 29]).join('');

describe('sealed content', () => {
  it('opens content of every size around the reused buffers\' (16 KB), in any order, each with its own text', () => {
    const key = newDataKey();
    const sizes = [0, 1, 15, 16, 17, 100, 5_000, 12_270, 12_290, 16_368, 16_384, 16_400, 40_000, 3];
    const sealed = sizes.map((n, i) => ({ t: text(n), s: seal(key, text(n), `c|e${i}|text`), ctx: `c|e${i}|text` }));
    for (const { t, s, ctx } of [...sealed, ...sealed.reverse()]) expect(open(key, s, ctx)).toBe(t);
  });

  it('authenticates the context, short or long, ASCII or not, around the reused buffer\'s size', () => {
    const key = newDataKey();
    for (const n of [0, 1, 300, 341, 342, 343, 1_024, 5_000]) {
      for (const ctx of [`${'x'.repeat(n)}|text`, `${'é'.repeat(n)}|text`, `${'€'.repeat(n)}|text`]) {
        const s = seal(key, 'hello', ctx);
        expect(open(key, s, ctx)).toBe('hello');
        expect(open(key, s, `${ctx}!`)).toBeNull();
        expect(open(key, s, ctx.slice(1))).toBeNull();
      }
    }
  });

  it('opens nothing with another key, a changed ciphertext or a bad IV', () => {
    const key = newDataKey();
    for (const t of ['short', text(20_000)]) {
      const s = seal(key, t, 'c|e|text');
      expect(open(newDataKey(), s, 'c|e|text')).toBeNull();
      const flipped = Buffer.from(s.ct, 'base64');
      flipped[0]! ^= 1;
      expect(open(key, { ...s, ct: flipped.toString('base64') }, 'c|e|text')).toBeNull();
      expect(open(key, { ...s, ct: s.ct.slice(0, 8) }, 'c|e|text')).toBeNull();
      expect(open(key, { ...s, iv: 'AAAA' }, 'c|e|text')).toBeNull();
      expect(open(key, s, 'c|e|text')).toBe(t);
    }
  });
});
