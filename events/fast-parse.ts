// zod's safeParse with the common case compiled: every event a reader decodes is checked
// against its envelope and data schemas (events/schemas.ts), and zod spent ≈ 1.5–3 µs an
// event doing it (a payload, an issues array and a call per field, the collector's work
// after). `fastSafeParse(schema)` walks the schema once and builds plain checks for what it
// knows (objects, strings, numbers, booleans, literals, enums, nullable, optional, default,
// unknown, string-keyed records); an input they accept gives the very value zod's parse
// gives (a new object, fields in the schema's order, unknown keys left out, defaults put in).
// Anything they do not accept goes to zod itself, so a failure is zod's, with zod's issues:
// the compiled checks only ever say "zod accepts this, and gives that", never why not.
// A schema holding anything else (a refinement, a transform, a union, a check not listed
// here) is not compiled at all: zod parses it as before.
import type { z } from 'zod';

/** What a compiled check returns when zod must look at the input itself. */
const NO: unique symbol = Symbol('zod decides');
type Check = (input: unknown) => unknown;

/** The parts of a zod 4 schema this reads (`schema._zod`). */
type Internals = {
  def: {
    type: string;
    /** Set on a schema that is itself a check (`z.uuid()`, `z.int()`, `z.email()`: zod runs it first). */
    check?: string;
    format?: string;
    checks?: Array<{ _zod: { def: Record<string, unknown> & { check: string } } }>;
    coerce?: boolean;
    shape?: Record<string, { _zod: Internals }>;
    catchall?: unknown;
    innerType?: { _zod: Internals };
    keyType?: { _zod: Internals };
    valueType?: { _zod: Internals };
    defaultValue?: unknown;
    mode?: string;
  };
  optin?: string;
  optout?: string;
  values?: ReadonlySet<unknown>;
};

const internals = (schema: unknown): Internals => (schema as { _zod: Internals })._zod;

/** A plain object as zod's record takes it as is: Object's prototype, no `constructor` of its own, no symbol keys. */
const plainRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && Object.getPrototypeOf(v) === Object.prototype && !Object.hasOwn(v, 'constructor') && Object.getOwnPropertySymbols(v).length === 0;

/** The source of one check function, its constants and its variables. */
class Source {
  readonly lines: string[] = [];
  readonly consts: unknown[] = [];
  readonly vars: string[] = [];
  constant(x: unknown): string {
    this.consts.push(x);
    return `c[${this.consts.length - 1}]`;
  }
  variable(): string {
    const name = `v${this.vars.length}`;
    this.vars.push(name);
    return name;
  }
}

/** A number as source: a literal when it reads back the same, else a constant. */
const numberSource = (src: Source, n: number): string => (Number.isFinite(n) ? String(n) : src.constant(n));

/** The conditions the checks of a string or number schema make on `v`, or null if one is not known here. */
function conditions(src: Source, z: Internals, kind: 'string' | 'number', v: string): string[] | null {
  const out: string[] = [];
  for (const c of z.def.checks ?? []) {
    const d = c._zod.def;
    // zod counts a length past 1 in code points where it differs from UTF-16 units: only 0 and 1, where the two agree, are compiled.
    if (kind === 'string' && d.check === 'min_length' && typeof d.minimum === 'number' && d.minimum <= 1) out.push(`${v}.length >= ${numberSource(src, d.minimum)}`);
    else if (kind === 'string' && d.check === 'max_length' && typeof d.maximum === 'number') out.push(`${v}.length <= ${numberSource(src, d.maximum)}`);
    else if (kind === 'string' && d.check === 'string_format' && (d.format === 'uuid' || d.format === 'regex') && d.pattern instanceof RegExp && !d.pattern.global && !d.pattern.sticky) out.push(`${src.constant(d.pattern)}.test(${v})`);
    else if (kind === 'number' && d.check === 'number_format' && d.format === 'safeint') out.push(`Number.isSafeInteger(${v})`);
    else if (kind === 'number' && (d.check === 'greater_than' || d.check === 'less_than') && typeof d.value === 'number') {
      out.push(`${v} ${d.check === 'greater_than' ? '>' : '<'}${d.inclusive ? '=' : ''} ${numberSource(src, d.value)}`);
    } else return null;
  }
  return out;
}

/** Whether a schema takes `undefined` (so an absent field is not refused by its own check). */
const takesUndefined = (z: Internals): boolean =>
  z.def.type === 'unknown' || z.def.type === 'any' || z.def.type === 'optional' || z.def.type === 'default' || (z.def.type === 'nullable' && !!z.def.innerType && takesUndefined(internals(z.def.innerType)));

/**
 * Writes the source that checks `v` against `z` (`return NO` when zod must decide) and
 * returns the expression holding zod's output for it, or null when `z` holds something not
 * compiled here.
 */
function emit(src: Source, z: Internals, v: string): string | null {
  const def = z.def;
  const out = src.lines;
  if ((def.checks?.length && def.type !== 'string' && def.type !== 'number') || def.coerce || def.check !== undefined || def.format !== undefined) return null;
  switch (def.type) {
    case 'string':
    case 'number': {
      const cs = conditions(src, z, def.type, v);
      if (!cs) return null;
      if (def.type === 'number') cs.unshift(`Number.isFinite(${v})`);
      out.push(`if (typeof ${v} !== "${def.type}"${cs.map((c) => ` || !(${c})`).join('')}) return NO;`);
      return v;
    }
    case 'boolean':
      out.push(`if (typeof ${v} !== "boolean") return NO;`);
      return v;
    case 'unknown':
    case 'any':
      return v;
    case 'literal':
    case 'enum': {
      if (!z.values) return null;
      const values = [...z.values];
      if (values.length === 1 && typeof values[0] === 'string') out.push(`if (${v} !== ${JSON.stringify(values[0])}) return NO;`);
      else out.push(`if (!${src.constant(z.values)}.has(${v})) return NO;`);
      return v;
    }
    case 'nullable':
    case 'optional': {
      const inner = def.innerType && internals(def.innerType);
      // An optional default (`.default(x).optional()`) substitutes for absence: not compiled.
      if (!inner || (def.type === 'optional' && inner.optin === 'defaulted')) return null;
      const r = src.variable();
      out.push(`${r} = ${def.type === 'nullable' ? 'null' : 'undefined'};`, `if (${v} !== ${def.type === 'nullable' ? 'null' : 'undefined'}) {`);
      const x = emit(src, inner, v);
      if (x === null) return null;
      out.push(`${r} = ${x};`, '}');
      return r;
    }
    case 'default': {
      const inner = def.innerType && internals(def.innerType);
      if (!inner) return null;
      // zod's own default: `defaultValue` is a getter that gives a fresh copy each time.
      const d = src.constant(def);
      const r = src.variable();
      out.push(`if (${v} === undefined) ${r} = ${d}.defaultValue;`, 'else {');
      const x = emit(src, inner, v);
      if (x === null) return null;
      out.push(`${r} = ${x};`, `if (${r} === undefined) ${r} = ${d}.defaultValue;`, '}');
      return r;
    }
    case 'record': {
      const key = def.keyType && internals(def.keyType);
      // A string key (no checks, no listed keys) takes every key a plain object has.
      if (!key || key.def.type !== 'string' || key.def.checks?.length || key.def.coerce || key.values || !def.valueType) return null;
      const r = src.variable();
      const k = src.variable();
      const e = src.variable();
      out.push(`if (!${src.constant(plainRecord)}(${v})) return NO;`, `${r} = {};`, `for (${k} of Object.keys(${v})) {`, `if (${k} === "__proto__") continue;`, `${e} = ${v}[${k}];`);
      const x = emit(src, internals(def.valueType), e);
      if (x === null) return null;
      out.push(`${r}[${k}] = ${x};`, '}');
      return r;
    }
    case 'object': {
      if (def.catchall || !def.shape) return null;
      out.push(`if (typeof ${v} !== "object" || ${v} === null || Array.isArray(${v})) return NO;`);
      // zod's object, for the inputs it accepts (handlePropertyResult): a required field must
      // be there; a defaulted one always is (its default when absent); an optional one only
      // when the input has it. The output has the schema's order.
      const fields: Array<{ key: string; value: string; present: string | null }> = [];
      for (const key of Object.keys(def.shape)) {
        if (key === '__proto__') return null;
        const f = internals(def.shape[key]);
        const k = JSON.stringify(key);
        const x = src.variable();
        out.push(`${x} = ${v}[${k}];`);
        let present: string | null = null;
        if (f.optin === undefined && f.optout === undefined) {
          if (takesUndefined(f)) out.push(`if (${x} === undefined && !(${k} in ${v})) return NO;`);
        } else if (f.optin === 'optional' && f.optout === 'optional') {
          present = src.variable();
          out.push(`${present} = ${x} !== undefined || ${k} in ${v};`, `if (${present}) {`);
        } else if (f.optin !== 'defaulted' || f.optout !== undefined) return null;
        const r = emit(src, f, x);
        if (r === null) return null;
        if (present) out.push(`${x} = ${r};`, '}');
        fields.push({ key: k, value: present ? x : r, present });
      }
      const r = src.variable();
      const first = fields.findIndex((f) => f.present);
      const literal = first < 0 ? fields : fields.slice(0, first);
      out.push(`${r} = {${literal.map((f) => `${f.key}: ${f.value}`).join(', ')}};`);
      for (const f of first < 0 ? [] : fields.slice(first)) out.push(`${f.present ? `if (${f.present}) ` : ''}${r}[${f.key}] = ${f.value};`);
      return r;
    }
    default:
      return null;
  }
}

/** The compiled check of `schema`, or null when it holds something not compiled here (or code cannot be made at run time). */
function compile(z: Internals): Check | null {
  const src = new Source();
  const r = emit(src, z, 'input');
  if (r === null) return null;
  const body = `${src.vars.length ? `let ${src.vars.join(', ')};\n` : ''}${src.lines.join('\n')}\nreturn ${r};`;
  try {
    return new Function('c', 'NO', `return function check(input) {\n${body}\n};`)(src.consts, NO) as Check;
  } catch {
    return null;
  }
}

/**
 * `schema.safeParse`, the inputs it accepts checked by compiled code (see above); the same
 * result for every input: what the compiled checks do not accept is zod's to parse.
 */
export function fastSafeParse<S extends z.ZodType>(schema: S): (input: unknown) => z.ZodSafeParseResult<z.output<S>> {
  const check = compile(internals(schema));
  if (!check) return (input) => schema.safeParse(input);
  return (input) => {
    const out = check(input);
    return out === NO ? schema.safeParse(input) : { success: true, data: out as z.output<S> };
  };
}

/** Whether `schema` is compiled (tests: the event schemas must all be). */
export const isCompiled = (schema: z.ZodType): boolean => compile(internals(schema)) !== null;
