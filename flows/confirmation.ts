import { plain } from './parse-number.ts';

/**
 * How a reply to "is it X?" reads: yes; no; or no with the right value ("no, è Giulia
 * Bianchi", "no, my email is …"), whose `rest` the node's parser reads. `unclear`: neither.
 */
export type ConfirmationReading = { kind: 'yes' } | { kind: 'no'; rest: string } | { kind: 'unclear'; rest: string };

const YES = /^(?:si|sì|certo|certamente|esatto|esattamente|giusto|corretto|confermo|va bene|perfetto|ok|okay|yes|yeah|yep|yup|sure|correct|right|exactly|that's right|that is right|affermativo)\b/;
const NO = /^(?:no|nope|non (?:e|è) (?:giusto|corretto)|sbagliato|errato|not quite|not really|wrong|nah)\b/;
/** What joins "no" and the right value: "no, è …", "no, in realtà mi chiamo …", "no, it's …". */
const LEAD = /^[\s,.!;:-]*(?:(?:in realta|veramente|actually|sorry|scusa)[\s,]+)?(?:(?:e|è|ma|but|it's|it is|its|the right one is|quella giusta e|quella giusta è)[\s,:]+)?/i;

export function readConfirmation(text: string): ConfirmationReading {
  const t = text.trim();
  const p = plain(t).replace(/^[\s"'«“]+/, '');
  const no = NO.exec(p);
  if (no) return { kind: 'no', rest: stripLead(t.slice(t.toLowerCase().indexOf(no[0].split(' ')[0]!) + no[0].length)) };
  const yes = YES.exec(p);
  // "sì, ma è …" is a correction too.
  if (yes) {
    const rest = stripLead(t.slice(yes[0].length + (t.length - t.trimStart().length)));
    return /^(?:ma|but)\b/i.test(plain(t.slice(yes[0].length)).replace(/^[\s,.!]+/, '')) && rest ? { kind: 'unclear', rest } : { kind: 'yes' };
  }
  return { kind: 'unclear', rest: t };
}

const stripLead = (s: string) => s.replace(LEAD, '').trim();
