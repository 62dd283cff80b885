// What the unit tests of the actor host's parts share: embedded file logs in temporary
// directories (removed after each test), the seed twin, a logger that says nothing.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { createFileLog } from '../../log/file.ts';

export const seedTwin = { id: 'warren-buffett-001', name: 'Warren Buffett' };
export const quietLogger = { info() {}, warn() {}, error() {} };
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A maker of file logs, each in a directory of its own, removed once the test that made it is over. */
export function tempFileLogs(prefix: string) {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  return (partitions = 1) => {
    const dir = mkdtempSync(join(tmpdir(), `gemello-${prefix}-`));
    dirs.push(dir);
    return createFileLog({ dir, partitions });
  };
}
