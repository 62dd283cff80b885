// The data directory belongs to one process; one that cannot be used is told in one line.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DataDirLocked, DataDirUnusable, lockDataDir } from '../../runtime/data-dir-lock.ts';

const root = mkdtempSync(join(tmpdir(), 'gemello-lock-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('the data directory lock', () => {
  it('makes a directory that does not exist yet, and refuses a second holder while the first lives', () => {
    const dir = join(root, 'new', 'deep');
    lockDataDir(dir, 'first');
    // A holder that is alive and not this process (our parent's pid in the lock file) is refused.
    writeFileSync(join(dir, 'lock'), JSON.stringify({ pid: process.ppid, host: hostname(), startedAt: 'then', what: 'other', nonce: 'n' }));
    expect(() => lockDataDir(dir, 'second')).toThrow(DataDirLocked);
  });

  it('takes over a lock of an earlier boot, although its pid is alive now (a pid reused after a reboot)', () => {
    const dir = join(root, 'rebooted');
    lockDataDir(dir, 'first');
    writeFileSync(join(dir, 'lock'), JSON.stringify({ pid: process.ppid, host: hostname(), startedAt: 'before the reboot', what: 'old', nonce: 'n', boot: 'an-earlier-boot' }));
    const lock = lockDataDir(dir, 'after');
    expect(JSON.parse(readFileSync(lock.path, 'utf8'))).toMatchObject({ pid: process.pid, what: 'after' });
  });

  it('says in one line (bad_config) that a path which is a file is not a directory', () => {
    const file = join(root, 'a-file.json');
    writeFileSync(file, '{}');
    const err = (() => {
      try {
        lockDataDir(file, 'x');
      } catch (e) {
        return e as Error & { code?: string };
      }
      return null;
    })();
    expect(err).toBeInstanceOf(DataDirUnusable);
    expect(err!.code).toBe('bad_config');
    expect(err!.message).toMatch(/^GEMELLO_DATA_DIR .*a-file\.json is not a directory/);
  });
});
