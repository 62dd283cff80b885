import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { createPGliteDb } from '../../stores/db-pglite.ts';
import { blankClusterFile } from '../../stores/pglite-blank.ts';

const root = mkdtempSync(join(tmpdir(), 'gemello-pglite-blank-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const table = async (db: ReturnType<typeof createPGliteDb>, name: string) =>
  (await db.query<{ t: string | null }>(`SELECT to_regclass($1)::text AS t`, [name]))[0]!.t;

describe('a new embedded database starts from the blank cluster kept once (stores/pglite-blank.ts)', () => {
  const file = join(root, 'cache', 'blank.tar.gz');

  it('keeps the first new cluster blank, starts the next from it, and never loads it over a cluster that exists', async () => {
    const first = createPGliteDb({ dir: join(root, 'a'), blankCluster: file });
    await first.exec('CREATE TABLE written_first (n int); INSERT INTO written_first VALUES (1)');
    // Kept before the first statement ran: nothing of this database's is in it.
    expect(statSync(file).size).toBeGreaterThan(100_000);
    await first.close();

    const second = createPGliteDb({ dir: join(root, 'b'), blankCluster: file });
    expect(await table(second, 'written_first')).toBeNull();
    await second.exec('CREATE TABLE own (n int); INSERT INTO own VALUES (2)');
    await second.close();
    // What the second wrote is on its disk, and a reopened directory is its own cluster, not the blank one.
    const again = createPGliteDb({ dir: join(root, 'b'), blankCluster: file });
    expect(await again.query('SELECT n FROM own')).toEqual([{ n: 2 }]);
    await again.close();
    const firstAgain = createPGliteDb({ dir: join(root, 'a'), blankCluster: file });
    expect(await firstAgain.query('SELECT n FROM written_first')).toEqual([{ n: 1 }]);
    await firstAgain.close();

    const memory = createPGliteDb({ blankCluster: file });
    expect(await table(memory, 'written_first')).toBeNull();
    await memory.close();
  });

  it.each([
    ['cut short', () => readFileSync(file).subarray(0, 1_000_000)],
    ['whole, but not a tar', () => gzipSync(Buffer.alloc(2_000_000, 'not a data directory '))],
    ['a tar, but not a cluster', () => {
      mkdirSync(join(root, 'other', 'pgdata'), { recursive: true });
      writeFileSync(join(root, 'other', 'pgdata', 'README'), 'something else');
      return execFileSync('tar', ['-cz', '-C', join(root, 'other'), 'pgdata']);
    }],
  ])('makes the cluster anew when the kept one is damaged (%s), and keeps a good one in its place', async (_, damaged) => {
    const good = readFileSync(file);
    writeFileSync(file, damaged());
    const dir = join(root, `c${Math.random()}`);
    const db = createPGliteDb({ dir, blankCluster: file });
    await db.exec('CREATE TABLE t (n int); INSERT INTO t VALUES (3)');
    expect(await db.query('SELECT n FROM t')).toEqual([{ n: 3 }]);
    await db.close();
    expect(gunzipSync(readFileSync(file)).length).toBe(gunzipSync(good).length);
  });

  it('names a file of the installed PGlite by default', () => {
    expect(blankClusterFile()).toMatch(/node_modules[/\\]\.cache[/\\]gemello[/\\]pglite-\d+\.\d+\.\d+-blank\.tar\.gz$/);
  });
});
