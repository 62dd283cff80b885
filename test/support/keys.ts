/** Data keys in tests: the same master key as the gemello processes the tests start (realEnv sets it). */
import { Buffer } from 'node:buffer';
import type { EventLog } from '../../log/port.ts';
import { createLoggedKeyStore } from '../../sealing/key-store.ts';
import type { LoggedKeyStore, LoggedKeyStoreOptions } from '../../sealing/key-store.ts';
import { fingerprint } from '../../sealing/master-key.ts';
import type { MasterKey } from '../../sealing/master-key.ts';
import type { Db } from '../../stores/sql.ts';

/** GEMELLO_MASTER_KEY of every process a test starts on the real services. */
export const TEST_MASTER_KEY_B64 = Buffer.alloc(32, 7).toString('base64');
const key = new Uint8Array(Buffer.from(TEST_MASTER_KEY_B64, 'base64'));
export const TEST_MASTER_KEY: MasterKey = { key, id: fingerprint(key), source: 'tests' };

/** A key store on `log` (its keys topic) and `db` (its cache), as a gemello process would open it. */
export const testKeyStore = (log: EventLog, db: Db, options: Partial<LoggedKeyStoreOptions> = {}): LoggedKeyStore =>
  createLoggedKeyStore({ log, db, master: TEST_MASTER_KEY, ...options });
