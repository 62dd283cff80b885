// The data directory belongs to one process; one that cannot be used is told in one line.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
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

describe('taking over a lock left behind', () => {
  const child = (dir: string, at: number) => spawn(process.execPath, ['--input-type=module', '-e', `
    import { lockDataDir } from ${JSON.stringify(new URL('../../runtime/data-dir-lock.ts', import.meta.url).href)};
    while (Date.now() < ${at}) {}
    try { lockDataDir(${JSON.stringify(dir)}, 'racer'); console.log('GOT'); } catch (e) { console.log(e.code === 'data_dir_locked' ? 'REFUSED' : 'ERROR ' + e.message); }
    setTimeout(() => {}, 600);
  `], { stdio: ['ignore', 'pipe', 'inherit'] });
  const outcome = (p: ReturnType<typeof spawn>) => new Promise<string>((r) => {
    let out = '';
    p.stdout!.on('data', (d) => (out += d));
    p.on('exit', () => r(out.trim()));
  });

  it('lets exactly one of several processes starting at once have it', async () => {
    for (let round = 0; round < 4; round++) {
      const dir = join(root, `race-${round}`);
      mkdirSync(dir, { recursive: true });
      // Even rounds: a lock left by a process that is gone; odd rounds: no lock.
      if (round % 2 === 0) writeFileSync(join(dir, 'lock'), JSON.stringify({ pid: 999_999_9, host: hostname(), startedAt: 'then', what: 'gone', nonce: 'old' }));
      const at = Date.now() + 1_500;
      const outcomes = await Promise.all(Array.from({ length: 6 }, () => outcome(child(dir, at))));
      expect(outcomes.filter((o) => o === 'GOT'), `round ${round}: ${outcomes.join(', ')}`).toHaveLength(1);
      expect(outcomes.filter((o) => o === 'REFUSED')).toHaveLength(5);
    }
  }, 60_000);

  it('is not stopped by a takeover file a process left when it died in the middle of one', () => {
    const dir = join(root, 'abandoned-takeover');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'lock'), JSON.stringify({ pid: 999_999_9, host: hostname(), startedAt: 'then', what: 'gone', nonce: 'old' }));
    writeFileSync(join(dir, 'lock.takeover'), JSON.stringify({ pid: 999_999_8, host: hostname(), startedAt: 'then', what: 'died taking over', nonce: 'mid' }));
    const past = new Date(Date.now() - 60_000);
    utimesSync(join(dir, 'lock.takeover'), past, past);
    const held = lockDataDir(dir, 'after');
    expect(JSON.parse(readFileSync(held.path, 'utf8'))).toMatchObject({ pid: process.pid, what: 'after' });
    held.release();
    // Nothing of the takeover is left behind.
    expect(readdirSync(dir)).toEqual([]);
  });

  it('never takes over a lock taken on another host (a frozen holder cannot be told from a dead one), and says how to clear it', () => {
    const dir = join(root, 'other-host');
    mkdirSync(dir, { recursive: true });
    const lock = join(dir, 'lock');
    writeFileSync(lock, JSON.stringify({ pid: 1, host: 'old-container', startedAt: 'then', what: 'gone', nonce: 'old' }));
    const past = new Date(Date.now() - 3_600_000);
    utimesSync(lock, past, past);
    expect(() => lockDataDir(dir, 'fresh')).toThrow(new RegExp(`in use by process 1 on host old-container .*if that process is surely gone \\(a container made anew\\), delete ${lock.replace(/[/.]/g, '\\$&')}`));
    expect(JSON.parse(readFileSync(lock, 'utf8'))).toMatchObject({ host: 'old-container' });
  });
});
