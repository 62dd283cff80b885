import { plain } from './parse-number.ts';

/**
 * How a reply to "is it X?" reads: yes; no; or no with the right value ("no, è Giulia
 * Bianchi", "no, my email is …"), whose `rest` the node's parser reads. `unclear`: neither.
 */
export type ConfirmationReading = { kind: 'yes' } | { kind: 'no'; rest: string } | { kind: 'unclear'; rest: string };

const YES = /^(?:si|sì|certo|certamente|esatto|esattamente|giusto|corretto|confermo|va bene|perfetto|sicuro|proprio cosi|proprio così|ok|okay|yes|yeah|yep|yup|sure|correct|right|exactly|that's right|that is right|affermativo|assolutamente|absolutely|definitely)\b/;
const NO = /^(?:no|nope|nono|negativo|non proprio|non (?:e|è) (?:giusto|corretto|cosi|così)|sbagliato|errato|not quite|not really|wrong|nah)\b/;
/** Words before the yes or the no that change neither: "assolutamente sì", "veramente no", "well, yes". */
const INTENSIFIER = /^(?:(?:assolutamente|proprio|veramente|direi(?: di)?|beh|be'|ehm|allora|well|absolutely|definitely|oh)[\s,.!]+)+(?=\S)/;
/** What joins "no" and the right value: "no, è …", "no, in realtà mi chiamo …", "no, it's …". */
const LEAD = /^[\s,.!;:-]*(?:(?:in realta|veramente|actually|sorry|scusa)[\s,]+)?(?:(?:e|è|ma|but|it's|it is|its|the right one is|quella giusta e|quella giusta è)[\s,:]+)?/i;

export function readConfirmation(text: string): ConfirmationReading {
  const t = text.trim();
  const quoted = plain(t).replace(/^[\s"'«“]+/, '');
  const p = quoted.replace(INTENSIFIER, '');
  const no = NO.exec(p);
  if (no) return { kind: 'no', rest: stripLead(t.slice(t.toLowerCase().indexOf(no[0].split(' ')[0]!) + no[0].length)) };
  const after = afterYes(text);
  // "sì, ma è …" is a correction too.
  if (after !== null) {
    const rest = stripLead(after);
    return /^(?:ma|but)\b/i.test(plain(after).replace(/^[\s,.!]+/, '')) && rest ? { kind: 'unclear', rest } : { kind: 'yes' };
  }
  return { kind: 'unclear', rest: t };
}

/** What follows the yes a reply starts with ("sì, sono Giulia" → ", sono Giulia"), or null when it starts with none. */
export function afterYes(text: string): string | null {
  const t = text.trim();
  const quoted = plain(t).replace(/^[\s"'«“]+/, '');
  const p = quoted.replace(INTENSIFIER, '');
  const yes = YES.exec(p);
  // Where the yes starts in `t` (plain keeps the length of what it reads).
  return yes ? t.slice(t.length - p.length + yes[0].length) : null;
}

const stripLead = (s: string) => s.replace(LEAD, '').trim();
