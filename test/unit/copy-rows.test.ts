import { describe, expect, it } from 'vitest';
import { copyRows } from '../../projections/copy-rows.ts';

describe('rows in COPY text format', () => {
  it('writes a line per row, escapes what COPY reads as special, and null as \\N', () => {
    type Row = { a: unknown; b: unknown; j: unknown };
    const columns = [{ name: 'a' as const }, { name: 'b' as const }, { name: 'j' as const, type: 'jsonb' as const }];
    const rows: Row[] = [
      { a: 'tab\there\nnew line\r\nand \\N', b: 7, j: { text: 'line\nbreak "quoted" \\' } },
      { a: null, b: Number.NaN, j: null },
      { a: 'NUL \u0000 in it', b: true, j: 'plain' },
    ];
    expect(copyRows(rows, columns).toString('utf8')).toBe([
      'tab\\there\\nnew line\\r\\nand \\\\N\t7\t{"text":"line\\\\nbreak \\\\"quoted\\\\" \\\\\\\\"}',
      '\\N\t\\N\t\\N',
      'NUL \uFFFD in it\ttrue\t"plain"',
      '',
    ].join('\n'));
  });

  it('writes text of any length and script as UTF-8, the buffer grown as it fills', () => {
    const columns = [{ name: 'n' as const }, { name: 't' as const }];
    const text = (i: number) => `${'é€😀'.repeat(200 + i)}\t${i}`;
    const rows = Array.from({ length: 40 }, (_, i) => ({ n: i, t: text(i) }));
    const expected = rows.map((r) => `${r.n}\t${r.t.replace('\t', '\\t')}\n`).join('');
    expect(copyRows(rows, columns).toString('utf8')).toBe(expected);
    expect(copyRows([], columns).length).toBe(0);
  });
});
