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

/** A string as text and jsonb store it: lone surrogates and U+0000 replaced. */
const storableString = (s: string): string => storableText(s.toWellFormed());

/**
 * An object's own keys made storable, or the object itself when they all are. Two keys that
 * differ only in what is replaced become one (the later value wins); the log keeps both.
 */
function storableKeys(o: object): object {
  const keys = Object.keys(o);
  if (keys.every((k) => storableString(k) === k)) return o;
  return Object.fromEntries(keys.map((k) => [storableString(k), (o as Record<string, unknown>)[k]]));
}

/** `v` as JSON text a jsonb column (or jsonb_to_recordset) stores: every string and every key in it storable. */
export function storableJson(v: unknown): string {
  const text = JSON.stringify(v);
  if (!UNSTORABLE_JSON.test(text)) return text;
  return JSON.stringify(v, (_k, x) => {
    if (typeof x === 'string') return storableString(x);
    if (typeof x === 'object' && x !== null && !Array.isArray(x)) return storableKeys(x);
    return x;
  });
}
