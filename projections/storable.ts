// What PostgreSQL can store, the one rule every write path of the projector follows (JSON
// statements, packed rows, COPY in text and in binary): text and jsonb hold neither U+0000
// nor a lone surrogate, so such characters become U+FFFD in the read model; the log keeps
// them as they came. A lone surrogate in text needs nothing here: UTF-8 encoding on its way to
// the server writes it as U+FFFD. In JSON text it would go as a \udXXX escape, which jsonb
// refuses, so JSON is written with it replaced.

/** What takes the place of a character PostgreSQL cannot store. */
export const REPLACEMENT = '\uFFFD';

const NUL = /\u0000/g;
/** U+0000 or a lone surrogate as JSON.stringify escapes them. */
const UNSTORABLE_JSON = /\\u0000|\\ud[89a-f]/i;

/** Text as a text column stores it: U+0000 replaced (one scan for the usual text, which holds none). */
export const storableText = (s: string): string => (s.indexOf('\u0000') === -1 ? s : s.replace(NUL, REPLACEMENT));

/** `v` as JSON text a jsonb column (or jsonb_to_recordset) stores: every string in it storable. */
export function storableJson(v: unknown): string {
  const text = JSON.stringify(v);
  return UNSTORABLE_JSON.test(text) ? JSON.stringify(v, (_k, x) => (typeof x === 'string' ? storableText(x.toWellFormed()) : x)) : text;
}
