import { Buffer } from 'node:buffer';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/**
 * The key-encryption key: it wraps every conversation's data key in the keys topic. It is
 * kept in neither the log nor the read models, so a copy of Kafka or of PostgreSQL alone
 * opens nothing. Back it up beside Kafka: without it the log cannot be read.
 */
export type MasterKey = {
  /** 32 bytes. */
  readonly key: Uint8Array;
  /** A short fingerprint written with each wrapped key, so a wrong master key is named, not guessed at. */
  readonly id: string;
  /** Where it came from, for the start-up log (never the key itself). */
  readonly source: string;
};

export type MasterKeyOptions = {
  /** GEMELLO_MASTER_KEY (or the file GEMELLO_MASTER_KEY_FILE names, read by the entry file): 32 bytes as base64 or hex. */
  value?: string | null;
  /** Where a key is made when neither is given (the data directory). */
  dataDir: string;
  /**
   * Whether a key is made when there is none (default true). A command that only looks makes
   * none: it gets a key of its own that is never written and opens nothing, so a look from a
   * directory without the deployment's key leaves no stray key behind for the next start to use.
   */
  make?: boolean;
};

/** Thrown when the master key that was given cannot be used; the message says what is expected. */
export class MasterKeyError extends Error {
  readonly code = 'bad_master_key';
}

const FILE_NAME = 'master.key';

export const fingerprint = (key: Uint8Array): string => createHash('sha256').update(key).digest('hex').slice(0, 16);

function parse(text: string, where: string): Uint8Array {
  const t = text.trim();
  const bytes = /^[0-9a-fA-F]{64}$/.test(t) ? Buffer.from(t, 'hex') : Buffer.from(t, 'base64');
  if (bytes.length !== 32) throw new MasterKeyError(`${where} must hold 32 bytes as base64 (44 characters) or hex (64 characters); make one with: openssl rand -base64 32`);
  return new Uint8Array(bytes);
}

/** What is wrong with a master key as given (null: it holds 32 bytes), for the configuration check at start. */
export function masterKeyProblem(value: string): string | null {
  try {
    parse(value, 'it');
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

const make = (key: Uint8Array, source: string): MasterKey => ({ key, id: fingerprint(key), source });

/**
 * The master key from GEMELLO_MASTER_KEY, else `<data dir>/master.key`, made (mode 0600)
 * the first time. Every process of a deployment
 * must use the same one.
 */
export function loadMasterKey(options: MasterKeyOptions): MasterKey & { created: boolean } {
  if (options.value) return { ...make(parse(options.value, 'GEMELLO_MASTER_KEY'), 'GEMELLO_MASTER_KEY'), created: false };
  const path = join(options.dataDir, FILE_NAME);
  if (existsSync(path)) return { ...make(parse(readFileSync(path, 'utf8'), path), `file ${path}`), created: false };
  if (options.make === false) return { ...make(new Uint8Array(randomBytes(32)), `none (no ${path} and no GEMELLO_MASTER_KEY; this command makes none)`), created: false };
  mkdirSync(dirname(path), { recursive: true });
  const key = new Uint8Array(randomBytes(32));
  // 'wx': two processes starting together on a new data directory make one key, not two.
  try {
    writeFileSync(path, Buffer.from(key).toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return { ...make(parse(readFileSync(path, 'utf8'), path), `file ${path}`), created: false };
    throw err;
  }
  chmodSync(path, 0o600);
  return { ...make(key, `file ${path} (made now)`), created: true };
}
