import type { NodeDef } from './definition.ts';
import { isoDate, isRealDate, parseDate, parseDatePart } from './parse-date.ts';
import type { DateParts } from './parse-date.ts';
import { parseNumber } from './parse-number.ts';
import { parseEmail, parseName, parsePattern, parsePhone, parseText } from './parse-text.ts';

/** What the deterministic parsers read in an answer for a node: a value, part of a date, or nothing. */
export type Reading = { kind: 'value'; value: unknown } | { kind: 'partial'; parts: DateParts } | { kind: 'none' };

/** Whether a string node holds a person's name (read with the name parser): its type says so, or its name does. */
export const isNameNode = (node: NodeDef) => node.type === 'name' || (node.type === 'string' && /name|nome/i.test(node.name));

/**
 * Reads a node's value out of an answer with the parsers of its type. `sub`: the date part
 * that was asked; `parts`: what was read of the date before.
 */
export function readValue(node: NodeDef, text: string, lang: 'it' | 'en', sub?: 'day' | 'month' | 'year', parts: DateParts = {}): Reading {
  const found = (v: unknown): Reading => (v === null || v === undefined ? { kind: 'none' } : { kind: 'value', value: v });
  switch (node.type) {
    case 'date': {
      let p: DateParts | null;
      if (sub) {
        const v = parseDatePart(text, sub, lang);
        p = v === null ? null : { ...parts, [sub]: v };
      } else p = parseDate(text, lang);
      if (!p) return { kind: 'none' };
      if (p.day !== undefined && p.month !== undefined && p.year !== undefined) {
        const whole = { day: p.day, month: p.month, year: p.year };
        return isRealDate(whole) ? { kind: 'value', value: isoDate(whole) } : { kind: 'none' };
      }
      return { kind: 'partial', parts: p };
    }
    case 'number':
      return found(parseNumber(text, lang));
    case 'email':
      return found(parseEmail(text));
    case 'phone':
      return found(parsePhone(text));
    case 'pattern':
      return found(parsePattern(text, node.pattern!));
    case 'name':
    case 'string': {
      const v = isNameNode(node) ? parseName(text) : parseText(text);
      if (v !== null && node.pattern && !new RegExp(node.pattern, 'u').test(v)) return { kind: 'none' };
      return found(v);
    }
    default: {
      const _never: never = node.type;
      return _never;
    }
  }
}

/** Whether a value (the model's reading) is valid for a node, and the value normalised. */
export function acceptValue(node: NodeDef, value: unknown, lang: 'it' | 'en'): unknown | null {
  if (value === null || value === undefined) return null;
  if (node.type === 'number') return typeof value === 'number' && Number.isFinite(value) ? value : parseNumber(String(value), lang);
  const r = readValue(node, String(value), lang);
  return r.kind === 'value' ? r.value : null;
}
