/** The CLI's command line: positional words and `--flag value` / `--flag=value` / `--flag` (true). */
export type Args = { _: string[]; flags: Record<string, string | true> };

/** Bad usage: the message says what was expected; the CLI prints it and exits with 2. */
export class UsageError extends Error {}

/** The flags that take no value: `events --json <id>` must not read the id as --json's value. */
export const SWITCHES: ReadonlySet<string> = new Set(['json', 'restart', 'dry-run', 'progress', 'help']);

export function parseArgs(argv: string[]): Args {
  const out: Args = { _: [], flags: {} };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a.startsWith('--')) {
      const [k, v] = a.slice(2).split('=', 2) as [string, string | undefined];
      if (v !== undefined) out.flags[k] = v;
      else if (!SWITCHES.has(k) && argv[i + 1] !== undefined && !argv[i + 1]!.startsWith('--')) out.flags[k] = argv[++i]!;
      else out.flags[k] = true;
    } else out._.push(a);
  }
  return out;
}

/**
 * Bad usage in the flags of a command that takes `allowed` (every command takes --progress
 * and --help): a flag it does not know, a switch given a value, or a flag given none.
 */
export function flagsProblem(args: Args, allowed: readonly string[]): string | null {
  for (const [name, value] of Object.entries(args.flags)) {
    if (name === 'progress' || name === 'help') continue;
    if (!allowed.includes(name)) return `unknown flag --${name}${allowed.length ? ` (this command takes ${allowed.map((f) => `--${f}`).join(', ')})` : ' (this command takes none)'}`;
    if (SWITCHES.has(name) && value !== true) return `--${name} takes no value`;
    // Numeric flags say what they take themselves (numberFlag).
    if (!SWITCHES.has(name) && value === true && !(name in NUMBER_FLAGS)) return `--${name} takes a value; none was given`;
  }
  return null;
}
type NumberSpec = { expected: string; min?: number; above?: number; integer?: boolean };

/** The flags that take a number, and what each takes. */
export const NUMBER_FLAGS = {
  at: { expected: 'a seq (a whole number)', min: 0, integer: true },
  timeout: { expected: 'a number of seconds', above: 0 },
  days: { expected: 'a number of days (0: retention off)', min: 0 },
} satisfies Record<string, NumberSpec>;

/**
 * A numeric flag: `fallback` when absent; a UsageError saying what it takes when it has no value
 * (`--days --dry-run` must not read as 1 day), is not a number, is below `min`, or is not whole
 * where `integer` asks for it.
 */
export function numberFlag(args: Args, name: keyof typeof NUMBER_FLAGS, fallback: number): number {
  const { expected, ...opts }: NumberSpec = NUMBER_FLAGS[name];
  const raw = args.flags[name];
  if (raw === undefined) return fallback;
  const n = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN;
  const ok = Number.isFinite(n) && (opts.min === undefined || n >= opts.min) && (opts.above === undefined || n > opts.above) && (!opts.integer || Number.isInteger(n));
  if (!ok) throw new UsageError(`--${name} takes ${expected}${raw === true ? '; none was given' : `, not "${raw}"`}`);
  return n;
}
