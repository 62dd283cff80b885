import { describe, expect, it } from 'vitest';
import { createSseReader } from '../../models/sse.ts';

const read = (pieces: string[]) => {
  const out: string[] = [];
  const r = createSseReader((d) => out.push(d));
  for (const p of pieces) r.push(p);
  return out;
};

describe('server-sent events read as they arrive', () => {
  it('gives each event once its blank line came, however the text is cut', () => {
    const text = 'data: {"a":1}\n\n: keep-alive\n\ndata: two\ndata: lines\n\ndata:[DONE]\n\n';
    const whole = read([text]);
    expect(whole).toEqual(['{"a":1}', 'two\nlines', '[DONE]']);
    for (let cut = 1; cut < text.length; cut++) expect(read([text.slice(0, cut), text.slice(cut)])).toEqual(whole);
    expect(read([...text])).toEqual(whole);
  });

  it('reads CRLF and CR line ends, also with a CRLF cut between two pieces', () => {
    expect(read(['data: x\r\n\r', '\ndata: y\r\rdata: z\n\n'])).toEqual(['x', 'y', 'z']);
    expect(read(['data: partial'])).toEqual([]);
  });
});
