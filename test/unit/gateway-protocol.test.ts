// The frame parser is the gateway's edge: whatever text arrives, it returns a frame the
// protocol allows or an error code, and never throws.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_DEPTH, MAX_FRAME_BYTES, MAX_SEQ, parseFrame } from '../../gateway/protocol.ts';

const deep = (n: number, leaf = '1') => '{"a":'.repeat(n) + leaf + '}'.repeat(n);
const strings = (v: unknown): string[] =>
  typeof v === 'string' ? [v] : Array.isArray(v) ? v.flatMap(strings) : v && typeof v === 'object' ? Object.entries(v).flatMap(([k, x]) => [k, ...strings(x)]) : [];

describe('parseFrame', () => {
  it('never throws, and what it accepts is a protocol frame of well-formed strings', () => {
    const field = fc.oneof(fc.jsonValue(), fc.string({ unit: 'binary' }), fc.constantFrom('prompt', 'confirm', 'resume', 'warren-buffett-001', '__proto__', 'constructor'));
    const frame = fc.dictionary(fc.constantFrom('type', 'digitalTwinId', 'digitalTwinName', 'prompt', 'conversationId', 'requestId', 'afterSeq', 'data', 'userId', 'constructor'), field);
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary' }), fc.json(), frame.map((f) => JSON.stringify(f))), (text) => {
        const r = parseFrame(text);
        if (!r.ok) {
          expect(r.code).toMatch(/^[a-z_]+$/);
          return;
        }
        expect([undefined, 'prompt', 'confirm', 'resume']).toContain(r.frame.type);
        for (const s of strings(r.frame)) expect(s.isWellFormed() && !s.includes('\u0000')).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it('limits bytes, not characters', () => {
    const prompt = (text: string) => JSON.stringify({ digitalTwinId: 'x', prompt: text });
    expect(parseFrame(prompt('€'.repeat(Math.floor(MAX_FRAME_BYTES / 3) + 100)))).toMatchObject({ ok: false, code: 'frame_too_large' });
    expect(parseFrame(prompt('€'.repeat(2_000)))).toMatchObject({ ok: true });
  });

  it('refuses deep nesting, lone surrogates, NUL and __proto__ keys with invalid_frame', () => {
    const confirm = (data: string) => `{"type":"confirm","conversationId":"c","requestId":"r","data":${data}}`;
    for (const text of [
      confirm(`{"k":${deep(10_000)}}`),
      confirm(`{"k":${deep(MAX_DEPTH)}}`),
      confirm('{"k":"\\udc00"}'),
      confirm('{"\\ud800":1}'),
      confirm('{"k":"a\\u0000"}'),
      confirm('{"__proto__":{"admin":true},"k":1}'),
      '{"digitalTwinId":"x","prompt":"hi","__proto__":{}}',
    ]) {
      expect(parseFrame(text)).toMatchObject({ ok: false, code: 'invalid_frame', requestId: text.includes('"r"') ? 'r' : undefined });
    }
    expect(parseFrame(confirm(`{"k":${deep(MAX_DEPTH - 3)}}`))).toMatchObject({ ok: true });
    expect(parseFrame(confirm('{"k":"😀 ok"}'))).toMatchObject({ ok: true });
  });

  it('takes a resume\'s afterSeq up to the highest seq there can be, and says what it takes past it', () => {
    const resume = (afterSeq: number) => parseFrame(JSON.stringify({ type: 'resume', conversationId: 'c', afterSeq, requestId: 'r' }));
    expect(resume(MAX_SEQ)).toMatchObject({ ok: true, frame: { afterSeq: MAX_SEQ } });
    for (const big of [MAX_SEQ + 1, 3_000_000_000, Number.MAX_SAFE_INTEGER]) {
      expect(resume(big)).toMatchObject({ ok: false, code: 'invalid_frame', requestId: 'r', error: expect.stringMatching(/afterSeq/) });
    }
  });
});
