import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';

/** A second process on an embedded data directory: the message names the holder and how to run several. */
export class DataDirLocked extends Error {
  readonly code = 'data_dir_locked';
}

export type DataDirLock = { readonly path: string; release(): void };

/** `boot`: the machine's boot id when the lock was taken (Linux), so a pid reused after a reboot is not taken for the holder. */
type Holder = { pid: number; host: string; startedAt: string; what: string; nonce: string; boot?: string };

/** This boot of the machine (Linux: /proc/sys/kernel/random/boot_id), or undefined where there is none. */
const bootId = (): string | undefined => {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
};

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, it is someone else's.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
};

const readHolder = (path: string): Holder | null => {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Holder;
  } catch {
    return null;
  }
};

/**
 * Takes the data directory for this process (its embedded file log and PGlite cannot be
 * shared: two writers would tear each other's files). A lock whose holder is gone (a
 * SIGKILLed process) is taken over; one whose holder lives is refused at once.
 */
export function lockDataDir(dir: string, what: string): DataDirLock {
  try {
    return takeDataDir(dir, what);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // What the operator can fix, in one line: a data directory that cannot be written, or is not a directory.
    if (code === 'EROFS' || code === 'EACCES' || code === 'EPERM') throw new DataDirUnusable(`GEMELLO_DATA_DIR ${resolve(dir)} cannot be written (${code}): the embedded log, read models and master key live there; give a writable directory`);
    if (code === 'EEXIST' || code === 'ENOTDIR') throw new DataDirUnusable(`GEMELLO_DATA_DIR ${resolve(dir)} is not a directory (${code}): give a directory (it is made when it does not exist)`);
    throw err;
  }
}

/** The data directory cannot be used at all (read-only, not a directory): told in one line. */
export class DataDirUnusable extends Error {
  readonly code = 'bad_config';
}

function takeDataDir(dir: string, what: string): DataDirLock {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'lock');
  const me: Holder = { pid: process.pid, host: hostname(), startedAt: new Date().toISOString(), what, nonce: randomUUID(), boot: bootId() };
  const text = JSON.stringify(me) + '\n';
  const refuse = (h: Holder) =>
    new DataDirLocked(
      `the data directory ${resolve(dir)} is in use by process ${h.pid} (${h.what}, since ${h.startedAt}). ` +
        'An embedded data directory belongs to one process at a time: stop that process, or give this one its own GEMELLO_DATA_DIR, ' +
        'or run several processes against shared backends (KAFKA_BROKERS for the log and DATABASE_URL for the read models, REDIS_URL for snapshots).',
    );
  try {
    writeFileSync(path, text, { flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const h = readHolder(path);
    // Taken in an earlier boot of this machine: whoever has its pid now is not the holder.
    const rebooted = h?.boot !== undefined && me.boot !== undefined && h.boot !== me.boot;
    if (h && h.pid !== process.pid && (h.host !== me.host || (alive(h.pid) && !rebooted))) throw refuse(h);
    // Stale (its process is gone, or the machine restarted since) or unreadable: take it over. Two processes taking over at
    // once both rename; the one whose nonce is read back holds it.
    const tmp = `${path}.${me.nonce}`;
    writeFileSync(tmp, text);
    renameSync(tmp, path);
    const now = readHolder(path);
    if (now?.nonce !== me.nonce) throw refuse(now ?? h!);
  }
  return {
    path,
    release() {
      if (readHolder(path)?.nonce === me.nonce) {
        try {
          unlinkSync(path);
        } catch {
          // already gone
        }
      }
    },
  };
}
