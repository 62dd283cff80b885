import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createReplyReader, replySoFar } from '../../models/reply-stream.ts';

describe('the reply string of a structured answer, read as it streams', () => {
  it('reads what replySoFar reads of every prefix, when fed the growing text piece by piece', () => {
    fc.assert(fc.property(fc.string(), fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 1, maxLength: 40 }), (reply, cuts) => {
      const whole = JSON.stringify({ reply, proposed: { name: null } });
      const read = createReplyReader();
      let at = 0;
      for (const n of [...cuts, whole.length]) {
        at = Math.min(whole.length, at + n);
        expect(read(whole.slice(0, at))).toBe(replySoFar(whole.slice(0, at)));
      }
      expect(read(whole)).toBe(reply);
    }));
  });
});
