/**
 * Numbers as people say them, in Italian and English: digits ("42", "1.234", "3,5") and
 * words ("quarantadue", "millenovecentonovanta", "forty-two", "one thousand nine hundred").
 */

/** Lower case without accents ("ventitré" → "ventitre"). */
export const plain = (s: string) => s.normalize('NFD').replace(/[\u0300-\u036f]/g, '').toLowerCase();

const IT_UNITS: [string, number][] = [
  ['diciassette', 17], ['diciannove', 19], ['quattordici', 14], ['diciotto', 18], ['tredici', 13], ['quindici', 15],
  ['undici', 11], ['dodici', 12], ['sedici', 16], ['quattro', 4], ['cinque', 5], ['dieci', 10],
  ['cinquanta', 50], ['cinquant', 50], ['quaranta', 40], ['quarant', 40], ['sessanta', 60], ['sessant', 60],
  ['settanta', 70], ['settant', 70], ['novanta', 90], ['novant', 90], ['ottanta', 80], ['ottant', 80],
  ['trenta', 30], ['trent', 30], ['venti', 20], ['vent', 20],
  ['sette', 7], ['nove', 9], ['otto', 8], ['primo', 1], ['uno', 1], ['una', 1], ['due', 2], ['tre', 3], ['sei', 6], ['un', 1],
];
const EN_UNITS: Record<string, number> = {
  zero: 0, one: 1, first: 1, two: 2, three: 3, four: 4, five: 5, six: 6, seven: 7, eight: 8, nine: 9, ten: 10, eleven: 11, twelve: 12,
  thirteen: 13, fourteen: 14, fifteen: 15, sixteen: 16, seventeen: 17, eighteen: 18, nineteen: 19,
  twenty: 20, thirty: 30, forty: 40, fifty: 50, sixty: 60, seventy: 70, eighty: 80, ninety: 90,
};
const SCALES: Record<string, number> = { cento: 100, hundred: 100, mille: 1000, mila: 1000, thousand: 1000, milione: 1e6, milioni: 1e6, million: 1e6 };
const IT_SCALES = ['milioni', 'milione', 'cento', 'mille', 'mila'];

/** An Italian number word ("millenovecentonovanta") as its parts, or null if it is not one. */
function italianParts(word: string): (number | string)[] | null {
  const out: (number | string)[] = [];
  let rest = word;
  while (rest.length) {
    const scale = IT_SCALES.find((s) => rest.startsWith(s));
    if (scale) { out.push(scale); rest = rest.slice(scale.length); continue; }
    const unit = IT_UNITS.find(([w]) => rest.startsWith(w));
    if (!unit) return null;
    out.push(unit[1]);
    rest = rest.slice(unit[0].length);
    // "ventuno", "trentotto": the tens lose their vowel before uno/otto.
  }
  return out;
}

/** The value of number words (parts in order), or null. */
function combine(parts: (number | string)[]): number | null {
  if (!parts.length) return null;
  let total = 0;
  let current = 0;
  for (const p of parts) {
    if (typeof p === 'number') current += p;
    else if (SCALES[p] === 100) current = (current || 1) * 100;
    else { total += (current || 1) * SCALES[p]!; current = 0; }
  }
  return total + current;
}

/** The number that a run of words spells, or null. */
export function wordsToNumber(words: string[]): number | null {
  const parts: (number | string)[] = [];
  for (const raw of words) {
    const w = plain(raw);
    if (w === 'e' || w === 'and') continue;
    if (w in EN_UNITS) parts.push(EN_UNITS[w]!);
    else if (w in SCALES) parts.push(w);
    else {
      const it = italianParts(w);
      if (!it) return null;
      parts.push(...it);
    }
  }
  return combine(parts);
}

const WORD = /[A-Za-zÀ-ÿ]+/g;

/** Every number in a text, in order: digit groups and runs of number words. */
export function numbersIn(text: string, lang: 'it' | 'en'): number[] {
  const out: { at: number; value: number }[] = [];
  // Digits: "1.234,5" in Italian, "1,234.5" in English; a lone separator before 3 digits groups thousands.
  for (const m of text.matchAll(/\d+(?:[.,]\d+)*/g)) {
    const s = m[0];
    const [group, dec] = lang === 'it' ? ['.', ','] : [',', '.'];
    // One separator not before three digits is the decimal point, whichever the language writes:
    // "12.50", "2.5", "1,5" (a group of thousands has three).
    const lone = /^\d+[.,]\d+$/.test(s) && !/[.,]\d{3}$/.test(s);
    const norm = lone ? s.replace(',', '.') : s.split(group).join('').replace(dec, '.');
    const v = /^\d+(\.\d+)?$/.test(norm) ? Number(norm) : Number(s.replace(/[.,]/g, ''));
    if (Number.isFinite(v)) out.push({ at: m.index!, value: v });
  }
  let run: { at: number; words: string[] } | null = null;
  const flush = () => {
    if (!run) return;
    const v = wordsToNumber(run.words);
    if (v !== null) out.push({ at: run.at, value: v });
    run = null;
  };
  let lastEnd = -1;
  for (const m of text.matchAll(WORD)) {
    const w = m[0];
    const between = lastEnd < 0 ? '' : text.slice(lastEnd, m.index);
    const isNum = wordsToNumber([w]) !== null && !(plain(w) === 'e' || plain(w) === 'and');
    const joiner = (plain(w) === 'e' || plain(w) === 'and') && run !== null;
    if ((isNum || joiner) && run && /^[\s-]*$/.test(between)) run.words.push(w);
    else if (isNum) { flush(); run = { at: m.index!, words: [w] }; }
    else flush();
    lastEnd = m.index! + w.length;
  }
  flush();
  return out.sort((a, b) => a.at - b.at).map((x) => x.value);
}

/** The one number a reply gives ("42", "quarantadue", "about forty two"), or null when there is none. */
export function parseNumber(text: string, lang: 'it' | 'en'): number | null {
  const all = numbersIn(text, lang);
  return all.length ? all[0]! : null;
}
