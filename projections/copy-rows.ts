// Rows in COPY's text format, for `COPY <table> (<columns>) FROM STDIN` (Query.copyIn):
// a line per row, fields separated by tabs, \N for null, and backslash, tab, newline and
// carriage return written as \\, \t, \n, \r. For PostgreSQL that is about half the work of the
// packed INSERT (projections/packed-rows.ts) for the same rows: rows are inserted in groups, the
// fields parsed once, and without ON CONFLICT (bench projector). Any text can be copied; U+0000
// becomes U+FFFD as on the other paths.
import { jsonText } from './packed-rows.ts';
import type { PackedColumn } from './packed-rows.ts';

const SPECIAL = /[\\\t\n\r\u0000]/;
const ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r', '\u0000': '\uFFFD' };
const ESCAPED = /[\\\t\n\r\u0000]/g;
const escape = (s: string): string => (SPECIAL.test(s) ? s.replace(ESCAPED, (c) => ESCAPES[c]!) : s);

function field(v: unknown, json: boolean | undefined): string {
  if (v === null || v === undefined) return '\\N';
  if (json) return escape(jsonText(v));
  switch (typeof v) {
    case 'string':
      return escape(v);
    case 'number':
      // As JSON writes them: a number that is not finite is null.
      return Number.isFinite(v) ? String(v) : '\\N';
    case 'boolean':
      return v ? 'true' : 'false';
    default:
      return escape(jsonText(v));
  }
}

/**
 * The rows in COPY's text format, the columns in the order given. Each row is a line of its own,
 * joined once at the end: one text built by `+=` over every field of a transaction's rows is a
 * tree of thousands of pieces that encoding it for the socket then walks, slowly (built and
 * encoded, 3.2–4.3 µs of one thread's CPU a row like `events`', 1.8–2.3 with the lines joined;
 * that encoding was ≈ 8 % of a catching-up projector's samples, bench projector).
 */
export function copyRows<R extends Record<string, unknown>>(rows: readonly R[], columns: readonly PackedColumn<R>[]): string {
  // One more, empty: the join ends the last row with its newline.
  const lines = new Array<string>(rows.length + 1);
  const first = columns[0]!;
  for (let r = 0; r < rows.length; r++) {
    const row = rows[r]!;
    let line = field(row[first.name], first.json);
    for (let i = 1; i < columns.length; i++) {
      const c = columns[i]!;
      line += '\t' + field(row[c.name], c.json);
    }
    lines[r] = line;
  }
  lines[rows.length] = '';
  return lines.join('\n');
}
