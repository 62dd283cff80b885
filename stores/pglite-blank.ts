// A blank PGlite cluster kept once, so that a new embedded data directory (a first
// `npm start`, every `gemello` command on a data directory of its own, the tests) loads it in
// ≈ 0.7 s instead of running initdb, ≈ 3 s of CPU (measured 2026-12-03, 2-vCPU AMD EPYC:
// initdb 2.8–2.9 s, from this file 0.7–1.2 s). It is made from the first cluster initdb makes,
// before anything is written to it, and lives beside the PGlite that made it
// (node_modules/.cache/gemello), named by that PGlite's version: another build never loads it.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { PGlite } from '@electric-sql/pglite';

/** PGlite's package directory and version, or null where it is not installed as files (then no blank cluster is kept). */
function pgliteHome(): { dir: string; version: string } | null {
  try {
    const entry = import.meta.resolve('@electric-sql/pglite');
    if (!entry.startsWith('file:')) return null;
    for (let dir = dirname(fileURLToPath(entry)); dir !== dirname(dir); dir = dirname(dir)) {
      const manifest = join(dir, 'package.json');
      if (!existsSync(manifest)) continue;
      const { name, version } = JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string; version?: string };
      if (name === '@electric-sql/pglite' && version) return { dir, version };
    }
  } catch {
    // not resolvable from here: no blank cluster
  }
  return null;
}

/** Found once a process (undefined: not looked for yet): the installed PGlite does not change under it. */
let found: string | null | undefined;

/** Where the blank cluster of the installed PGlite is kept (null: nowhere, every new cluster runs initdb). */
export function blankClusterFile(): string | null {
  if (found !== undefined) return found;
  const home = pgliteHome();
  // <node_modules>/@electric-sql/pglite → <node_modules>/.cache/gemello
  found = home ? join(dirname(dirname(home.dir)), '.cache', 'gemello', `pglite-${home.version}-blank.tar.gz`) : null;
  return found;
}

/**
 * The kept blank cluster as a tar, to load (PGlite's loadDataDir), or undefined when none is
 * kept. One that does not decompress whole (gzip's length and CRC-32 are checked here, ≈ 0.1 s)
 * or is not a tar is forgotten: PGlite never sees such a file.
 */
export function readBlankCluster(file: string | null): Blob | undefined {
  if (!file) return undefined;
  let gz: Buffer;
  try {
    gz = readFileSync(file);
  } catch {
    return undefined;
  }
  let tar: Buffer | null = null;
  try {
    tar = gunzipSync(gz);
  } catch {
    // cut short or altered: the gzip trailer's length or CRC-32 does not match
  }
  // A tar begins with a header whose magic is at 257 (ustar).
  if (!tar || tar.toString('latin1', 257, 262) !== 'ustar') {
    forgetBlankCluster(file);
    return undefined;
  }
  return new Blob([tar as Uint8Array<ArrayBuffer>], { type: 'application/x-tar' });
}

/**
 * Keeps `pg`'s cluster as the blank one: call it before anything is written to the cluster.
 * Written beside and renamed into place, so that two processes making one at once, or one that
 * dies while writing, leave a whole file or none. Where it cannot be written (the code read-only,
 * as in the image) nothing is kept and nothing fails.
 */
export async function keepBlankCluster(pg: PGlite, file: string | null): Promise<void> {
  if (!file) return;
  const part = `${file}.${process.pid}.part`;
  try {
    const tar = await pg.dumpDataDir('gzip');
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(part, new Uint8Array(await tar.arrayBuffer()));
    renameSync(part, file);
  } catch {
    rmSync(part, { force: true });
  }
}

/** Forgets a kept blank cluster that did not load (damaged): the next new cluster runs initdb and keeps its own. */
export function forgetBlankCluster(file: string | null): void {
  if (file) rmSync(file, { force: true });
}
