import { randomUUID } from 'node:crypto';
import { linkSync, mkdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
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

/** A lock file that cannot be read (being written by an older build, or garbage) counts as left behind once this old. */
const UNREADABLE_STALE_MS = 2_000;
/** A takeover file this old was left by a process that died in the middle of one (a takeover takes milliseconds). */
const TAKEOVER_STALE_MS = 10_000;
/** How long a start waits for another's takeover to end before it gives up. */
const TAKEOVER_WAIT_MS = 15_000;

/**
 * Takes the data directory for this process (its embedded file log and PGlite cannot be
 * shared: two writers would tear each other's files). A lock whose holder is gone (a
 * SIGKILLed process on this machine, or one from an earlier boot) is taken over, by one
 * process at a time; one whose holder lives is refused at once, and so is one taken on
 * another host (its pid says nothing here, and a frozen holder cannot be told from a dead one).
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
  const takeover = `${path}.takeover`;
  const me: Holder = { pid: process.pid, host: hostname(), startedAt: new Date().toISOString(), what, nonce: randomUUID(), boot: bootId() };
  const text = JSON.stringify(me) + '\n';
  const refuse = (h: Holder, note = '') =>
    new DataDirLocked(
      `the data directory ${resolve(dir)} is in use by process ${h.pid}${h.host !== me.host ? ` on host ${h.host}` : ''} (${h.what}, since ${h.startedAt})${note}. ` +
        'An embedded data directory belongs to one process at a time: stop that process, or give this one its own GEMELLO_DATA_DIR, ' +
        'or run several processes against shared backends (KAFKA_BROKERS for the log and DATABASE_URL for the read models, REDIS_URL for snapshots).' +
        (h.host !== me.host ? ` A lock taken on another host (or in another container) is never taken over: if that process is surely gone (a container made anew), delete ${path}.` : ''),
    );
  /** Whether the lock's holder is gone: what may be taken over. */
  const leftBehind = (h: Holder | null, ageMs: number): boolean => {
    if (!h) return ageMs > UNREADABLE_STALE_MS;
    if (h.host !== me.host) return false;
    if (h.pid === process.pid) return true;
    // Taken in an earlier boot of this machine: whoever has its pid now is not the holder.
    if (h.boot !== undefined && me.boot !== undefined && h.boot !== me.boot) return true;
    return !alive(h.pid);
  };
  const deadline = Date.now() + TAKEOVER_WAIT_MS;
  let last: Holder | null = null;
  while (Date.now() < deadline) {
    // The lock appears whole or not at all (linked from a file already written): nobody reads a half-written one.
    if (createWhole(path, text, me.nonce)) return held(path, me.nonce);
    const seen = lockAt(path);
    if (!seen) continue; // released meanwhile: try again
    last = seen.holder ?? last;
    if (!leftBehind(seen.holder, seen.ageMs)) {
      if (seen.holder) throw refuse(seen.holder);
      pause(100); // unreadable, and new: being written by an older build
      continue;
    }
    // Left behind: one process at a time replaces it (two that both saw it stale would each think they hold it).
    if (!createWhole(takeover, text, `${me.nonce}.t`)) {
      clearAbandoned(takeover, me.nonce);
      pause(25);
      continue;
    }
    try {
      const again = lockAt(path);
      // Still the lock that was judged left behind: replace it. Else someone took it meanwhile: judge anew.
      if (again && again.holder?.nonce === seen.holder?.nonce && again.mtimeMs === seen.mtimeMs) {
        const tmp = `${path}.${me.nonce}`;
        try {
          writeFileSync(tmp, text);
          renameSync(tmp, path);
        } finally {
          unlinkQuietly(tmp);
        }
        return held(path, me.nonce);
      }
    } finally {
      // Only our own: one that replaced ours (judged abandoned by a process that waited too long) is left to its maker.
      if (readHolder(takeover)?.nonce === me.nonce) unlinkQuietly(takeover);
    }
  }
  throw refuse(last ?? { pid: 0, host: me.host, startedAt: 'unknown', what: 'unknown', nonce: '' }, last && leftBehind(last, Infinity) ? `, gone, but another process's takeover of the lock did not end within ${TAKEOVER_WAIT_MS / 1000} s` : '');
}

/**
 * Removes a takeover file its maker left (it died in the middle of one): moved aside first
 * (one process moves it), then removed only if it is the one judged abandoned; a newer one
 * moved by mistake is linked back.
 */
function clearAbandoned(takeover: string, nonce: string): void {
  const t = lockAt(takeover);
  if (!t || t.ageMs <= TAKEOVER_STALE_MS) return;
  const aside = `${takeover}.${nonce}.old`;
  try {
    renameSync(takeover, aside);
  } catch {
    return; // moved or removed by another process meanwhile
  }
  const moved = readHolder(aside);
  if (moved?.nonce !== t.holder?.nonce) {
    try {
      linkSync(aside, takeover);
    } catch {
      // another takeover began meanwhile: it holds the path now
    }
  }
  unlinkQuietly(aside);
}

/**
 * Writes `text` to a file of its own, then links it as `path`: false when `path` exists. Where
 * the file system has no hard links (exFAT, some network mounts), an exclusive create does it
 * (a reader may then see the file before its content: unreadable locks count as new for a while).
 */
function createWhole(path: string, text: string, nonce: string): boolean {
  const tmp = `${path}.${nonce}.new`;
  writeFileSync(tmp, text);
  try {
    linkSync(tmp, path);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw err;
    try {
      writeFileSync(path, text, { flag: 'wx' });
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw e;
    }
  } finally {
    unlinkQuietly(tmp);
  }
}

/** The lock file's holder (null: unreadable), its age and mtime; null when there is no lock file. */
function lockAt(path: string): { holder: Holder | null; ageMs: number; mtimeMs: number } | null {
  try {
    const { mtimeMs } = statSync(path);
    return { holder: readHolder(path), ageMs: Date.now() - mtimeMs, mtimeMs };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

function held(path: string, nonce: string): DataDirLock {
  return {
    path,
    release() {
      if (readHolder(path)?.nonce === nonce) unlinkQuietly(path);
    },
  };
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}

/** Waits `ms` without returning to the event loop (the lock is taken before anything else starts). */
function pause(ms: number): void {
  try {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
  } catch {
    const end = Date.now() + ms;
    while (Date.now() < end) { /* a runtime without Atomics.wait here */ }
  }
}
