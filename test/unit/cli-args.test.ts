// The CLI's flags: a numeric flag given without its value is bad usage, never a number.
import { describe, expect, it } from 'vitest';
import { flagsProblem, numberFlag, parseArgs, UsageError } from '../../cli/args.ts';
import { replayUsage } from '../../cli/replay.ts';

describe('the CLI command line', () => {
  it('reads positional words and flags with and without values', () => {
    expect(parseArgs(['state', 'c1', '--at', '3', '--json', '--days=7'])).toEqual({ _: ['state', 'c1'], flags: { at: '3', json: true, days: '7' } });
  });

  it('never takes the word after a switch as its value, and refuses unknown flags, switches with values and flags without', () => {
    // `events --json <id>` once read the id as the value of --json, and asked for the id.
    expect(parseArgs(['events', '--json', 'c1'])).toEqual({ _: ['events', 'c1'], flags: { json: true } });
    expect(parseArgs(['replay', '--restart', '--projection', 'readmodel']).flags).toEqual({ restart: true, projection: 'readmodel' });
    const problem = (argv: string[], allowed: string[]) => flagsProblem(parseArgs(argv), allowed);
    expect(problem(['events', 'c1', '--bogus', 'x'], ['json'])).toBe('unknown flag --bogus (this command takes --json)');
    expect(problem(['verify', '--json'], [])).toBe('unknown flag --json (this command takes none)');
    // `erase <id> --by` once erased and recorded "by operator".
    expect(problem(['erase', 'c1', '--by'], ['reason', 'by', 'timeout'])).toBe('--by takes a value; none was given');
    expect(problem(['events', 'c1', '--json=yes'], ['json'])).toBe('--json takes no value');
    expect(problem(['erase', 'c1', '--by', 'ann', '--reason=asked', '--progress'], ['reason', 'by', 'timeout'])).toBeNull();
    // A numeric flag without its value is numberFlag's to tell (below).
    expect(problem(['state', 'c1', '--at'], ['at'])).toBeNull();
  });

  it('refuses a numeric flag without its value instead of reading it as 1', () => {
    // `retention --days --dry-run` once meant "erase what is older than 1 day".
    const args = parseArgs(['retention', '--days', '--dry-run']);
    expect(args.flags['dry-run']).toBe(true);
    expect(() => numberFlag(args, 'days', 90)).toThrow(UsageError);
    expect(() => numberFlag(args, 'days', 90)).toThrow('--days takes a number of days (0: retention off); none was given');
    expect(() => numberFlag(parseArgs(['state', 'c1', '--at']), 'at', Infinity)).toThrow('--at takes a seq (a whole number); none was given');
  });

  it('refuses values that are not numbers, too small or not whole, and takes good ones', () => {
    const at = (v: string) => numberFlag(parseArgs(['state', 'c1', '--at', v]), 'at', Infinity);
    expect(() => at('abc')).toThrow('--at takes a seq (a whole number), not "abc"');
    expect(() => at('2.5')).toThrow(UsageError);
    expect(() => at('-1')).toThrow(UsageError);
    expect(at('0')).toBe(0);
    expect(at('12')).toBe(12);
    expect(numberFlag(parseArgs(['state', 'c1']), 'at', Infinity)).toBe(Infinity);
    const timeout = (v: string) => numberFlag(parseArgs(['erase', 'c1', `--timeout=${v}`]), 'timeout', 30);
    expect(() => timeout('0')).toThrow(UsageError);
    expect(() => timeout('')).toThrow(UsageError);
    expect(timeout('1.5')).toBe(1.5);
  });

  it('tells replay without a projection it rebuilds as bad usage, from the flags alone (before any backend is opened)', () => {
    expect(replayUsage(parseArgs(['replay']).flags)).toMatch(/^usage: gemello replay --projection <name> \[--restart\]\nprojections:\n  readmodel  /);
    expect(replayUsage(parseArgs(['replay', '--projection']).flags)).toMatch(/^usage: gemello replay/);
    expect(replayUsage(parseArgs(['replay', '--projection', 'nope']).flags)).toMatch(/^no projection "nope"\nusage: /);
    expect(replayUsage(parseArgs(['replay', '--projection', 'snapshots']).flags)).toMatch(/^the Redis snapshots are rebuilt with: gemello snapshots rebuild\n/);
    expect(replayUsage(parseArgs(['replay', '--projection', 'readmodel', '--restart']).flags)).toBeNull();
  });
});
