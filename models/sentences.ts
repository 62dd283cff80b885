/** A finished sentence of a reply: its text and where it starts in the whole reply (UTF-16 offset, as `reply.delta` counts). */
export type Sentence = { text: string; offset: number };

/** A sentence ends at . ! ? … (with closing quotes or brackets after it) followed by white space, or at a line break. */
const END = /[.!?…]+["'’”)\]]*\s|\n/g;
/** Shorter pieces ("Mr.", "3.", "Ok.") are joined to the next sentence: one clip each would sound choppy. */
const MIN_CHARS = 12;
/** A sentence without an end this long is cut at its last comma, semicolon, colon or space. */
const MAX_CHARS = 240;

/**
 * Cuts a reply into sentences while it streams: `push` takes the next piece of text and
 * returns the sentences it finished; `flush` returns what is left once the reply is whole.
 * Each sentence is trimmed; together, with the white space between them, they are the text.
 */
export function createSentenceSplitter() {
  let text = '';
  /** Where the sentence being read starts in `text`. */
  let start = 0;
  /** Where the search for its end resumes (no end before here). */
  let scan = 0;

  const take = (end: number, out: Sentence[]) => {
    const raw = text.slice(start, end);
    const lead = raw.length - raw.trimStart().length;
    const body = raw.trim();
    if (body) out.push({ text: body, offset: start + lead });
    start = end;
    scan = end;
  };

  return {
    push(piece: string): Sentence[] {
      text += piece;
      const out: Sentence[] = [];
      for (;;) {
        END.lastIndex = scan;
        const m = END.exec(text);
        if (!m) break;
        const end = m.index + m[0].length;
        if (text.slice(start, end).trim().length < MIN_CHARS && m[0] !== '\n') {
          scan = end;
          continue;
        }
        take(end, out);
      }
      if (text.length - start > MAX_CHARS) {
        const window = text.slice(start, start + MAX_CHARS);
        const cut = Math.max(window.lastIndexOf(', '), window.lastIndexOf('; '), window.lastIndexOf(': '));
        const at = cut > MIN_CHARS ? cut + 2 : window.lastIndexOf(' ') > MIN_CHARS ? window.lastIndexOf(' ') + 1 : MAX_CHARS;
        take(start + at, out);
      } else {
        scan = Math.max(scan, text.length - 8); // a long quote run could straddle pieces: look back a little
        scan = Math.max(start, scan);
      }
      return out;
    },
    /** The rest of the text as the last sentence (null: nothing is left). */
    flush(): Sentence | null {
      const out: Sentence[] = [];
      take(text.length, out);
      return out[0] ?? null;
    },
  };
}
