import { numbersIn, plain } from './parse-number.ts';

/** A date as far as it was said: all three parts, or some of them. */
export type DateParts = { day?: number; month?: number; year?: number };

const MONTHS: Record<string, number> = {};
const NAMES = {
  it: ['gennaio', 'febbraio', 'marzo', 'aprile', 'maggio', 'giugno', 'luglio', 'agosto', 'settembre', 'ottobre', 'novembre', 'dicembre'],
  en: ['january', 'february', 'march', 'april', 'may', 'june', 'july', 'august', 'september', 'october', 'november', 'december'],
};
for (const names of Object.values(NAMES)) names.forEach((n, i) => { MONTHS[n] = i + 1; MONTHS[n.slice(0, 3)] = i + 1; });
MONTHS.sept = 9;

const MONTH_RE = new RegExp(`\\b(${Object.keys(MONTHS).sort((a, b) => b.length - a.length).join('|')})\\.?\\b`, 'i');

/** Two-digit years: 00–(this century's last two + 0) are 20xx, the rest 19xx, as people mean a birth year. */
const fullYear = (y: number, pivot: number) => (y >= 100 ? y : y <= pivot ? 2000 + y : 1900 + y);

/** Whether the parts make a real calendar day. */
export function isRealDate(p: Required<DateParts>): boolean {
  const d = new Date(Date.UTC(p.year, p.month - 1, p.day));
  return d.getUTCFullYear() === p.year && d.getUTCMonth() === p.month - 1 && d.getUTCDate() === p.day && p.year >= 1000 && p.year <= 9999;
}

export const isoDate = (p: Required<DateParts>) => `${String(p.year).padStart(4, '0')}-${String(p.month).padStart(2, '0')}-${String(p.day).padStart(2, '0')}`;

/**
 * The parts of a date a reply gives: "1990-03-03", "03/03/1990" (day first, in both
 * languages), "3 marzo 1990", "il tre marzo millenovecentonovanta", "March 3, 1990", or a
 * part of one ("3 marzo", "marzo 1990"). Null when it names no date at all.
 */
export function parseDate(text: string, lang: 'it' | 'en', pivot = 30): DateParts | null {
  const iso = /\b(\d{4})-(\d{1,2})-(\d{1,2})\b/.exec(text);
  if (iso) return { year: +iso[1]!, month: +iso[2]!, day: +iso[3]! };
  const num = /\b(\d{1,2})[/.-](\d{1,2})[/.-](\d{2}|\d{4})\b/.exec(text);
  if (num) return { day: +num[1]!, month: +num[2]!, year: fullYear(+num[3]!, pivot) };
  const t = plain(text);
  const m = MONTH_RE.exec(t);
  if (!m) {
    const year = numbersIn(t, lang).find((n) => Number.isInteger(n) && n >= 1000 && n <= 9999);
    return year !== undefined ? { year } : null;
  }
  const out: DateParts = { month: MONTHS[m[1]!.toLowerCase()]! };
  const before = numbersIn(t.slice(0, m.index), lang).filter(Number.isInteger);
  const after = numbersIn(t.slice(m.index + m[0].length), lang).filter(Number.isInteger);
  const last = before[before.length - 1];
  if (last !== undefined && last >= 1 && last <= 31) out.day = last;
  else if (after.length && after[0]! >= 1 && after[0]! <= 31 && (after.length > 1 || lang === 'en')) out.day = after.shift()!;
  const y = after.find((n) => n >= 1000 && n <= 9999) ?? (after.length === 1 && after[0]! < 100 ? fullYear(after[0]!, pivot) : undefined);
  if (y !== undefined) out.year = y;
  return out;
}

/** One part of a date, as an answer to "which day / month / year?". */
export function parseDatePart(text: string, part: 'day' | 'month' | 'year', lang: 'it' | 'en', pivot = 30): number | null {
  const whole = parseDate(text, lang, pivot);
  if (whole?.[part] !== undefined) return whole[part]!;
  const nums = numbersIn(plain(text), lang).filter(Number.isInteger);
  const n = nums[0];
  if (n === undefined) return null;
  if (part === 'day') return n >= 1 && n <= 31 ? n : null;
  if (part === 'month') return n >= 1 && n <= 12 ? n : null;
  return n >= 1000 && n <= 9999 ? n : n < 100 ? fullYear(n, pivot) : null;
}

/** A date for people: "3 marzo 1990", "3 March 1990". */
export function formatDate(iso: string, lang: 'it' | 'en'): string {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(iso);
  if (!m) return iso;
  const name = NAMES[lang][+m[2]! - 1]!;
  return `${+m[3]!} ${lang === 'en' ? name[0]!.toUpperCase() + name.slice(1) : name} ${+m[1]!}`;
}
