import { describe, expect, it } from 'vitest';
import { copyRows } from '../../projections/copy-rows.ts';

describe('rows in COPY text format', () => {
  it('writes a line per row, escapes what COPY reads as special, and null as \\N', () => {
    type Row = { a: unknown; b: unknown; j: unknown };
    const columns = [{ name: 'a' as const }, { name: 'b' as const }, { name: 'j' as const, json: true }];
    const rows: Row[] = [
      { a: 'tab\there\nnew line\r\nand \\N', b: 7, j: { text: 'line\nbreak "quoted" \\' } },
      { a: null, b: Number.NaN, j: null },
      { a: 'NUL \u0000 in it', b: true, j: 'plain' },
    ];
    expect(copyRows(rows, columns)).toBe([
      'tab\\there\\nnew line\\r\\nand \\\\N\t7\t{"text":"line\\\\nbreak \\\\"quoted\\\\" \\\\\\\\"}',
      '\\N\t\\N\t\\N',
      'NUL \uFFFD in it\ttrue\t"plain"',
      '',
    ].join('\n'));
  });
});
