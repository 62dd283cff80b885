/** `{{path}}` placeholders in flow texts: what they name, and the text with memory filled in. */
const PLACEHOLDER = /\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)\s*\}\}/g;
const WHOLE = /^\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)\s*\}\}$/;

/** `{{…}}` that is not a placeholder (`{{customer.full-name}}`, `{{}}`): it would reach the user as written. */
export function malformedPlaceholders(text: string): string[] {
  return [...text.replace(PLACEHOLDER, '').matchAll(/\{\{[^}]*\}\}/g)].map((m) => m[0]);
}

/** The memory paths a text names, in order. */
export function placeholders(text: string): string[] {
  return [...text.matchAll(PLACEHOLDER)].map((m) => m[1]!);
}

/** The strings inside a JSON value (a backend call's body), with their JSON paths below `base`. */
export function stringsIn(value: unknown, base: string): { path: string; text: string }[] {
  if (typeof value === 'string') return [{ path: base, text: value }];
  if (Array.isArray(value)) return value.flatMap((v, i) => stringsIn(v, `${base}[${i}]`));
  if (value && typeof value === 'object') return Object.entries(value).flatMap(([k, v]) => stringsIn(v, `${base}.${k}`));
  return [];
}

/** The value at a dotted path of memory, or undefined. */
export function lookup(memory: Record<string, unknown>, path: string): unknown {
  let cur: unknown = memory;
  for (const part of path.split('.')) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

/** A text with each placeholder replaced by its value (`format` turns a value into words; missing values become ""). */
export function render(text: string, vars: (path: string) => unknown, format: (v: unknown) => string = String): string {
  return text.replace(PLACEHOLDER, (_m, path: string) => {
    const v = vars(path);
    return v === undefined || v === null ? '' : format(v);
  });
}

/**
 * A JSON value with its strings rendered; a string that is one placeholder alone keeps the
 * value's own type (a number stays a number in a backend's body).
 */
export function renderJson(value: unknown, vars: (path: string) => unknown): unknown {
  if (typeof value === 'string') {
    const whole = WHOLE.exec(value);
    if (whole) return vars(whole[1]!) ?? null;
    return render(value, vars, (v) => (typeof v === 'object' ? JSON.stringify(v) : String(v)));
  }
  if (Array.isArray(value)) return value.map((v) => renderJson(v, vars));
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, renderJson(v, vars)]));
  return value;
}
