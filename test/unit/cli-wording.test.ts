// What the CLI prints about counts reads as a person would write it: "1 conversation checked",
// and a copy that found nothing new says the table was current, not that it holds 0 records.
import { describe, expect, it } from 'vitest';
import { differenceIn, verifySummary } from '../../cli/verify.ts';
import { copied, plural } from '../../cli/wording.ts';

describe('the CLI\'s counts', () => {
  it('gemello verify: one conversation, one mismatch, many of each', () => {
    expect(verifySummary({ conversations: 1, mismatches: [], behind: 0 })).toBe('1 conversation checked: 0 mismatches');
    expect(verifySummary({ conversations: 1, mismatches: [{}], behind: 0 })).toBe('1 conversation checked: 1 mismatch');
    expect(verifySummary({ conversations: 1802, mismatches: [{}, {}], behind: 3 })).toMatch(/^1,802 conversations checked: 2 mismatches, 3 not yet fully projected \(the projector projects them while it runs; .*gemello restore/);
  });

  it('gemello migrate and restore: what a copy of a topic read, or that the table was current', () => {
    expect(copied(0, 'the keys topic', 'the key cache')).toBe('the key cache already held every record of the keys topic');
    expect(copied(1, 'the keys topic', 'the key cache')).toBe('1 record of the keys topic read into the key cache');
    expect(copied(12, 'the voice topic', 'voice_clips')).toBe('12 records of the voice topic read into voice_clips');
    expect(plural(1, 'reply', 'replies')).toBe('1 reply');
    expect(plural(0, 'snapshot')).toBe('0 snapshots');
  });

  it('gemello verify shows where two copies differ, not the same first characters of both', () => {
    const log = Array.from({ length: 30 }, (_, i) => ({ role: 'user', seq: i, content: `prompt ${i}` }));
    const copy = log.map((m) => (m.seq === 19 ? { ...m, content: 'prompt TAMPERED' } : m));
    expect(differenceIn(log, copy)).toBe('[19]: log has {"content":"prompt 19","role":"user","seq":19}, copy has {"content":"prompt TAMPERED","role":"user","seq":19}');
    // A long text: the excerpt starts just before the first character that differs.
    expect(differenceIn('a'.repeat(200) + 'X', 'a'.repeat(200) + 'Y')).toMatch(/^: log has …a{20}X", copy has …a{20}Y"$/);
  });
});
