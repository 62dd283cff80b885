import { z } from 'zod';

// How an environment variable's value is read and checked, one way for every setting
// (runtime/config.ts, models/settings.ts): a value that is not one of these is refused at
// start, naming the variable, rather than read as something else.

/** A number as written in decimal (`0x10`, `1e3` and blanks are refused, not read as something else). */
export const decimal = (whole: boolean) => z.string().trim().regex(whole ? /^\d+$/ : /^\d+(\.\d+)?$/, whole ? 'a whole number' : 'a number').transform(Number);
export const int = (def: number, min = 0, max = Number.MAX_SAFE_INTEGER) => decimal(true).pipe(z.number().int().min(min).max(max)).default(def);
export const optionalInt = (min = 0) => decimal(true).pipe(z.number().int().min(min)).optional();
export const positive = (def: number) => decimal(false).pipe(z.number().positive()).default(def);
/** A feature that is on unless set to `off`; any other value is refused rather than taken for "on". */
export const onOff = z.string().trim().toLowerCase().pipe(z.enum(['on', 'off']));
/** One of a few words, in any case. */
export const oneOf = <const T extends readonly [string, ...string[]]>(values: T) => z.string().trim().toLowerCase().pipe(z.enum(values));
/** A switch that is off unless set: 1/true/on/yes, or 0/false/off/no (any case); any other value is refused. */
export const flag = oneOf(['0', '1', 'true', 'false', 'on', 'off', 'yes', 'no']).default('0');
export const isOn = (v: string) => ['1', 'true', 'on', 'yes'].includes(v);
export const url = (schemes: string[]) => z.string().trim().refine((s) => schemes.some((x) => s.startsWith(`${x}://`)) && URL.canParse(s), `a URL starting with ${schemes.map((x) => `${x}://`).join(' or ')}`);
