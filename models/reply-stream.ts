/**
 * Reading a reply while it streams. The model's text comes in chunks; what the user sees
 * is the reply trimmed (as the final ReplyGenerated holds it), and with structured output
 * only the `reply` string of the JSON answer. Deltas must add up to the final text exactly.
 */

const ESCAPES: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };

/**
 * The `reply` string of a JSON answer as far as it has arrived, decoded; null before its
 * opening quote. An escape cut off at the end is left for the next chunk.
 */
export function replySoFar(content: string): string | null {
  const m = /"reply"\s*:\s*"/.exec(content);
  if (!m) return null;
  let out = '';
  for (let i = m.index + m[0].length; i < content.length; i++) {
    const c = content[i]!;
    if (c === '"') break;
    if (c !== '\\') {
      out += c;
      continue;
    }
    const e = content[i + 1];
    if (e === undefined) break;
    if (e === 'u') {
      const hex = content.slice(i + 2, i + 6);
      if (hex.length < 4) break;
      out += String.fromCharCode(parseInt(hex, 16));
      i += 5;
    } else {
      out += ESCAPES[e] ?? e;
      i += 1;
    }
  }
  return out;
}

/**
 * replySoFar for a text that only grows (a stream's content so far): each call decodes only
 * what came since the last, instead of the whole text again for every chunk.
 */
export function createReplyReader(): (content: string) => string | null {
  let at = -1;
  let out = '';
  let closed = false;
  return (content) => {
    if (at < 0) {
      const m = /"reply"\s*:\s*"/.exec(content);
      if (!m) return null;
      at = m.index + m[0].length;
    }
    while (!closed && at < content.length) {
      const c = content[at]!;
      if (c === '"') {
        closed = true;
        break;
      }
      if (c !== '\\') {
        out += c;
        at++;
        continue;
      }
      const e = content[at + 1];
      if (e === undefined) break;
      if (e === 'u') {
        const hex = content.slice(at + 2, at + 6);
        if (hex.length < 4) break;
        out += String.fromCharCode(parseInt(hex, 16));
        at += 6;
      } else {
        out += ESCAPES[e] ?? e;
        at += 2;
      }
    }
    return out;
  };
}

/**
 * Turns successive views of the whole text into deltas of its trimmed form: leading
 * whitespace is never sent and trailing whitespace only once something follows it, so what
 * was sent is always a prefix of the final `text.trim()`.
 */
export function createDeltaEmitter(onText: (delta: string) => void) {
  let sent = 0;
  return {
    /** The whole text so far. */
    update(whole: string): void {
      const visible = whole.trimStart().trimEnd();
      if (visible.length > sent) {
        onText(visible.slice(sent));
        sent = visible.length;
      }
    },
    get sent(): number {
      return sent;
    },
  };
}
