// Rows for a multi-row INSERT as one text parameter: fields separated by U+001F, rows by
// U+001E, a field that is U+0015 alone is null. The statement splits it with
// string_to_array and casts each field (see apply.ts): for PostgreSQL that is about a third
// less work than parsing the same rows as a JSON document for jsonb_to_recordset, and for
// this process less than JSON.stringify of every row's keys (bench projector). jsonb columns
// are written as JSON text, which escapes those three characters. A text value holding one
// of them cannot be packed: the caller sends those rows as JSON instead.
import type { BinaryType } from './copy-binary.ts';
import { storableJson, storableText } from './storable.ts';

/** A column: its name and its type; a jsonb column's value is written as JSON text. */
export type PackedColumn<R> = { name: keyof R & string; type?: BinaryType };

export const FIELD = '\u001f';
export const ROW = '\u001e';
export const NULL = '\u0015';
const RESERVED = /[\u0015\u001e\u001f]/;
/** A separator or U+0000 (which becomes U+FFFD: projections/storable.ts). */
const SPECIAL = /[\u0000\u0015\u001e\u001f]/;

/** A field's text, or null when the value cannot be packed. */
function field(v: unknown, json: boolean | undefined): string | null {
  if (v === null || v === undefined) return NULL;
  if (json) return storableJson(v);
  switch (typeof v) {
    case 'string':
      // One scan for the usual text, which holds none of the four.
      if (!SPECIAL.test(v)) return v;
      if (RESERVED.test(v)) return null;
      return storableText(v);
    case 'number':
      // As JSON writes them: a number that is not finite is null.
      return Number.isFinite(v) ? String(v) : NULL;
    case 'boolean':
      return v ? 'true' : 'false';
    default:
      return null;
  }
}

/** The rows packed, the columns in the order given; null if one of them cannot be. A line per row, joined once (see copyRows). */
export function packRows<R extends Record<string, unknown>>(rows: readonly R[], columns: readonly PackedColumn<R>[]): string | null {
  const lines = new Array<string>(rows.length);
  for (let r = 0; r < rows.length; r++) {
    const row = rows[r]!;
    let line = '';
    for (let i = 0; i < columns.length; i++) {
      const c = columns[i]!;
      const f = field(row[c.name], c.type === 'jsonb');
      if (f === null) return null;
      line += i ? FIELD + f : f;
    }
    lines[r] = line;
  }
  return lines.join(ROW);
}
