import { Buffer } from 'node:buffer';
import { createCipheriv, createDecipheriv, createSecretKey, randomBytes, randomFillSync } from 'node:crypto';
import type { KeyObject } from 'node:crypto';

/**
 * A person's content as it is stored in the log: AES-256-GCM under the conversation's data
 * key. `ct` is the ciphertext followed by the 16-byte tag, `iv` 12 random bytes, both base64.
 * Destroying the key (erasure) leaves every copy of `ct` unreadable: crypto-shredding.
 */
export type Sealed = { enc: 'a256gcm'; iv: string; ct: string };

/** What a reader sees in place of content whose key is gone. */
export const ERASED_TEXT = '[erased]';

const ALG = 'aes-256-gcm';

// Node imports a raw key anew on every cipher it makes; a KeyObject made once per data key
// makes each seal/open about 4× cheaper (replay decrypts every event).
const keyObjects = new WeakMap<Uint8Array, KeyObject>();
function keyObject(key: Uint8Array): KeyObject {
  let k = keyObjects.get(key);
  if (!k) keyObjects.set(key, (k = createSecretKey(key)));
  return k;
}
const TAG_BYTES = 16;
const IV_BYTES = 12;

// A fresh random IV per seal, drawn from a pool filled 512 IVs at a time: one call into
// the system's random source per 512 seals instead of one per seal (a measurable share
// of the actor host's CPU). Each IV is handed out once.
const ivPool = Buffer.alloc(IV_BYTES * 512);
let ivNext = ivPool.length;
function nextIv(): Buffer {
  if (ivNext === ivPool.length) {
    randomFillSync(ivPool);
    ivNext = 0;
  }
  const iv = Buffer.from(ivPool.subarray(ivNext, ivNext + IV_BYTES));
  ivNext += IV_BYTES;
  return iv;
}

export const isSealed = (v: unknown): v is Sealed =>
  typeof v === 'object' && v !== null && (v as Sealed).enc === 'a256gcm' && typeof (v as Sealed).iv === 'string' && typeof (v as Sealed).ct === 'string';

/** A fresh random 256-bit data key. */
export const newDataKey = (): Uint8Array => new Uint8Array(randomBytes(32));

/**
 * Encrypts `text`. `context` is authenticated but not stored (GCM's additional data): it
 * binds the ciphertext to where it sits (conversation, event, field), so it cannot be
 * moved into another event and read there.
 */
export function seal(key: Uint8Array, text: string, context: string): Sealed {
  const iv = nextIv();
  const cipher = createCipheriv(ALG, keyObject(key), iv);
  cipher.setAAD(Buffer.from(context, 'utf8'));
  const ct = Buffer.concat([cipher.update(text, 'utf8'), cipher.final(), cipher.getAuthTag()]);
  return { enc: 'a256gcm', iv: iv.toString('base64'), ct: ct.toString('base64') };
}

// open() decodes the IV, the ciphertext and the context into these buffers (the decipher
// copies what it is given) rather than into new ones per call, and hands the decipher views
// of them made once per length: replay opens most of its events, and the buffers and views a
// call made were ≈ 7 % of its CPU and a ninth of what it allocated (with the context's UTF-8
// length measured before it was written). Longer content gets buffers of its own.
const openIv = Buffer.alloc(IV_BYTES);
const openCt = Buffer.alloc(16 * 1024);
const openContext = Buffer.alloc(1024);

/** `buffer.subarray(from(n), to(n))` for each `n`, made the first time it is asked for. */
function views(buffer: Buffer, from: (n: number) => number, to: (n: number) => number): (n: number) => Buffer {
  const made = new Array<Buffer | undefined>(buffer.length + 1);
  return (n) => (made[n] ??= buffer.subarray(from(n), to(n)));
}
const ctBody = views(openCt, () => 0, (n) => n - TAG_BYTES);
const ctTag = views(openCt, (n) => n - TAG_BYTES, (n) => n);
const contextBytes = views(openContext, () => 0, (n) => n);

/** Decrypts what `seal` made with the same key and context; null if it does not authenticate. */
export function open(key: Uint8Array, sealed: Sealed, context: string): string | null {
  try {
    if (sealed.iv.length !== 16 || openIv.write(sealed.iv, 'base64') !== IV_BYTES) return null;
    // base64 of n bytes is at least 4n/3 characters, UTF-8 at most 3 bytes a UTF-16 unit: these fit.
    const reused = sealed.ct.length <= (openCt.length / 3) * 4;
    const bytes = reused ? null : Buffer.from(sealed.ct, 'base64');
    const n = bytes ? bytes.length : openCt.write(sealed.ct, 'base64');
    if (n < TAG_BYTES) return null;
    const decipher = createDecipheriv(ALG, keyObject(key), openIv);
    decipher.setAAD(context.length * 3 <= openContext.length ? contextBytes(openContext.write(context, 'utf8')) : Buffer.from(context, 'utf8'));
    decipher.setAuthTag(bytes ? bytes.subarray(n - TAG_BYTES) : ctTag(n));
    const text = decipher.update(bytes ? bytes.subarray(0, n - TAG_BYTES) : ctBody(n));
    // GCM gives nothing more at the end; final() checks the tag (throws if it does not match).
    decipher.final();
    return text.toString('utf8');
  } catch {
    return null;
  }
}

/** Encrypts bytes (kept audio) like `seal` does text: `iv (12) ‖ ciphertext ‖ tag (16)`, bound to `context`. */
export function sealBytes(key: Uint8Array, bytes: Uint8Array, context: string): Uint8Array {
  const iv = nextIv();
  const cipher = createCipheriv(ALG, keyObject(key), iv);
  cipher.setAAD(Buffer.from(context, 'utf8'));
  return new Uint8Array(Buffer.concat([iv, cipher.update(bytes), cipher.final(), cipher.getAuthTag()]));
}

/** Decrypts what `sealBytes` made with the same key and context; null if it does not authenticate. */
export function openBytes(key: Uint8Array, sealed: Uint8Array, context: string): Uint8Array | null {
  try {
    if (sealed.byteLength < IV_BYTES + TAG_BYTES) return null;
    const b = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
    const decipher = createDecipheriv(ALG, keyObject(key), b.subarray(0, IV_BYTES));
    decipher.setAAD(Buffer.from(context, 'utf8'));
    decipher.setAuthTag(b.subarray(b.length - TAG_BYTES));
    return new Uint8Array(Buffer.concat([decipher.update(b.subarray(IV_BYTES, b.length - TAG_BYTES)), decipher.final()]));
  } catch {
    return null;
  }
}
