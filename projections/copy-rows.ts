// Rows in COPY's text format, for `COPY <table> (<columns>) FROM STDIN` (Query.copyIn):
// a line per row, fields separated by tabs, \N for null, and backslash, tab, newline and
// carriage return written as \\, \t, \n, \r. For PostgreSQL that is about half the work of the
// packed INSERT (projections/packed-rows.ts) for the same rows: rows are inserted in groups, the
// fields parsed once, and without ON CONFLICT (bench projector). Any text can be copied; U+0000
// becomes U+FFFD (projections/storable.ts), in the same scan as the escapes.
import { Buffer } from 'node:buffer';
import type { PackedColumn } from './packed-rows.ts';
import { REPLACEMENT, storableJson } from './storable.ts';

const SPECIAL = /[\\\t\n\r\u0000]/;
const ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r', '\u0000': REPLACEMENT };
const ESCAPED = /[\\\t\n\r\u0000]/g;
const escape = (s: string): string => (SPECIAL.test(s) ? s.replace(ESCAPED, (c) => ESCAPES[c]!) : s);

function field(v: unknown, json: boolean | undefined): string {
  if (v === null || v === undefined) return '\\N';
  if (json) return escape(storableJson(v));
  switch (typeof v) {
    case 'string':
      return escape(v);
    case 'number':
      // As JSON writes them: a number that is not finite is null.
      return Number.isFinite(v) ? String(v) : '\\N';
    case 'boolean':
      return v ? 'true' : 'false';
    default:
      return escape(storableJson(v));
  }
}

/**
 * The rows in COPY's text format, the columns in the order given, as the UTF-8 bytes that go to
 * the server. Each row is a line of its own, written into one buffer as it is made: the lines
 * joined into one text (a transaction's few megabytes of it), which the `postgres` package's
 * copy stream then encoded into a buffer of its own, cost ≈ 0.7 µs an event more of this
 * thread's CPU, and the garbage of a large string per table per transaction (bench projector).
 * Earlier still, one text grown by `+=` over every field was a tree of thousands of pieces that
 * the encoding walked slowly (3.2–4.3 µs a row like `events`', 1.8–2.3 with the lines joined).
 */
export function copyRows<R extends Record<string, unknown>>(rows: readonly R[], columns: readonly PackedColumn<R>[]): Buffer {
  let buf = Buffer.allocUnsafe(Math.max(4096, rows.length * 512));
  let at = 0;
  const first = columns[0]!;
  for (let r = 0; r < rows.length; r++) {
    const row = rows[r]!;
    let line = field(row[first.name], first.type === 'jsonb');
    for (let i = 1; i < columns.length; i++) {
      const c = columns[i]!;
      line += '\t' + field(row[c.name], c.type === 'jsonb');
    }
    line += '\n';
    // At most 3 bytes a UTF-16 unit (a surrogate pair: 4 bytes for 2 units).
    const most = line.length * 3;
    if (at + most > buf.length) {
      const grown = Buffer.allocUnsafe(Math.max(buf.length * 2, at + most));
      buf.copy(grown, 0, 0, at);
      buf = grown;
    }
    at += buf.write(line, at, 'utf8');
  }
  return buf.subarray(0, at);
}
