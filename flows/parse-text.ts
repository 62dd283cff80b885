import { afterYes, readConfirmation } from './confirmation.ts';
import { plain } from './parse-number.ts';

/** The first email address in a reply ("la mia email è giulia.rossi@example.it"), lower-cased, or null. */
export function parseEmail(text: string): string | null {
  const m = /[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.[A-Za-z]{2,}/.exec(text);
  if (!m) return null;
  const email = m[0].replace(/\.+$/, '');
  return email.includes('..') ? null : email.toLowerCase();
}

/** A phone number (6–15 digits, spaces, dashes, dots, brackets, a leading + or 00), as "+<digits>" or digits; or null. */
export function parsePhone(text: string): string | null {
  for (const m of text.matchAll(/(?:\+|00)?\d[\d\s().-]{4,}\d/g)) {
    const raw = m[0].trim();
    const digits = raw.replace(/\D/g, '');
    if (digits.length < 6 || digits.length > 15) continue;
    if (raw.startsWith('+')) return `+${digits}`;
    if (raw.startsWith('00')) return `+${digits.slice(2)}`;
    return digits;
  }
  return null;
}

/** How people introduce their name, in Italian and English; the name follows. */
const INTRO = /^(?:(?:ciao|salve|buongiorno|buonasera|hi|hello|hey)[\s,!.]+)?(?:(?:allora|dunque|well|so)[\s,]+)?(?:(?:io )?mi chiamo|il mio nome (?:e|è)|io sono|sono|my name is|my name's|i am|i'm|im|it's|it is|this is|call me|name:?|nome:?|(?:e|è))\s+/i;
const STOP = new Set(['e', 'and', 'ma', 'but', 'grazie', 'thanks', 'thank', 'please', 'per', 'favore', 'ho', 'have', 'di', 'da', 'anni', 'years']);
const NAME_WORD = /^[\p{L}][\p{L}'’-]*$/u;
/**
 * Words no name starts with: a greeting, a doubt, a question word, a pronoun ("non lo so",
 * "boh", "perché me lo chiedi", "I don't know", "sono io"). Such an answer is no name: the
 * model reads it, or the node's noMatch asks again.
 */
const NOT_A_NAME = new Set([
  'ciao', 'salve', 'buongiorno', 'buonasera', 'hi', 'hello', 'hey', 'grazie', 'thanks', 'ok', 'okay', 'prego',
  'non', 'not', "don't", 'dont', 'boh', 'mah', 'ehm', 'uhm', 'hmm', 'mmm', 'bho', 'forse', 'maybe', 'nessuno', 'nobody', 'niente', 'nulla', 'nothing',
  'perche', 'why', 'what', 'who', 'cosa', 'come', 'how', 'dove', 'where', 'quando', 'when', 'quale', 'which', 'scusa', 'scusi', 'sorry', 'pardon',
  'io', 'i', 'tu', 'you', 'noi', 'voi', 'we', 'they', 'me', 'mi', 'ti', 'ci',
]);

/**
 * A person's name as they say it: "mi chiamo Giulia Rossi", "sono Giulia Rossi", "my name is
 * Giulia Rossi", or the name alone, each word capitalised: "Giulia Rossi". Null when the
 * reply holds no word that can be a name.
 */
export function parseName(text: string): string | null {
  // A yes or a no is no name; "no, è Giulia Rossi" and "sì, sono Giulia Rossi" name her, "Giusto Bianchi" is one.
  const c = readConfirmation(text);
  if (c.kind === 'no') return c.rest ? parseName(c.rest) : null;
  const after = c.kind === 'yes' ? afterYes(text) : null;
  if (after !== null && !/^\s+\p{Lu}/u.test(after)) return after.replace(/^[\s,.!;:-]+/, '') ? parseName(after.replace(/^[\s,.!;:-]+/, '')) : null;
  let rest = text.trim().replace(/^["'«“]+|["'»”]+$/g, '');
  // A question back ("chi sei?", "perché me lo chiedi?") is no name, unless it is the name alone ("Marco?") or follows one ("mi chiamo Giulia, e tu?").
  const question = /\?\s*$/.test(rest) && !INTRO.test(rest) && rest.trim().split(/\s+/).length > 1;
  if (question) return null;
  for (let i = 0; i < 3; i++) {
    const m = INTRO.exec(rest);
    if (!m) break;
    rest = rest.slice(m[0].length);
  }
  const words: string[] = [];
  for (const w of rest.split(/[\s,]+/)) {
    const clean = w.replace(/[.!?;:]+$/, '');
    if (!clean) continue;
    if (STOP.has(plain(clean)) || !NAME_WORD.test(clean)) break;
    if (!words.length && NOT_A_NAME.has(plain(clean).replace('’', "'"))) return null;
    words.push(clean);
    // Five words at most: "Maria Chiara De Luca Bianchi".
    if (words.length === 5 || clean !== w) break;
  }
  if (!words.length) return null;
  return words.map(capitalise).join(' ');
}

const capitalise = (w: string) => w.split(/([-'’])/).map((p) => (p.length > 1 || /\p{L}/u.test(p) ? p[0]!.toUpperCase() + p.slice(1).toLowerCase() : p)).join('');

/** The first match of a node's pattern (its first group when it has one), or null. */
export function parsePattern(text: string, pattern: string): string | null {
  const m = new RegExp(pattern, 'u').exec(text);
  if (!m) return null;
  return (m[1] ?? m[0]).trim() || null;
}

/** A free-text answer, trimmed; null when nothing was said. */
export function parseText(text: string): string | null {
  const t = text.trim();
  return t.length ? t : null;
}
