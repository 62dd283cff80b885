// The CLI's progress line: each piece of long work under its own label, with or without a known total.
import { describe, expect, it } from 'vitest';
import { createProgress } from '../../cli/progress.ts';

const drawn = () => {
  let text = '';
  return { out: { write: (s: string) => void (text += s) }, text: () => text };
};

describe('the progress line', () => {
  it('ends a piece of work with done/total', () => {
    const d = drawn();
    const p = createProgress(d.out);
    p.start('rebuilding readmodel', 9);
    p.advance(9);
    p.done();
    expect(d.text()).toMatch(/^\rrebuilding readmodel: 9\/9 \(\d+\/s\) in \d+\.\d s {3}\n$/);
  });

  it('draws a count alone when the total is not known (a topic read to its end), and nothing for no work', () => {
    const d = drawn();
    const p = createProgress(d.out);
    p.start('reading the keys topic', 0);
    p.done();
    expect(d.text()).toBe('');
    p.start('reading the voice topic', 0);
    p.advance(4);
    p.advance(3);
    p.done();
    expect(d.text()).toMatch(/^\rreading the voice topic: 7 \(\d+\/s\) in \d+\.\d s {3}\n$/);
  });

  it('draws nothing unless enabled', () => {
    const d = drawn();
    const p = createProgress(d.out, false);
    p.start('x', 0);
    p.advance(5);
    p.done();
    expect(d.text()).toBe('');
  });
});
