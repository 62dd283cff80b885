// Rows in COPY's binary format, for `COPY <table> (<columns>) FROM STDIN (FORMAT binary)`
// (Query.copyIn): a signature, then per row the number of fields and each field as its length
// and its bytes in the type's binary form (-1: null). PostgreSQL then reads each uuid, integer,
// float and timestamp as the bytes they are instead of parsing their text (bench projector-sql:
// ≈ 13 % less of the server's CPU an `events` row, ≈ 15 % a `messages` row); text and jsonb are
// their UTF-8 text either way. What the text format would write differently cannot be written
// here: the caller copies the rows as text instead (copy-rows.ts), and the server judges them.
import { Buffer } from 'node:buffer';
import { isoMs } from './iso-ms.ts';
import { storableJson, storableText } from './storable.ts';

/** How a column's values are written: as the column's type on the server. */
export type BinaryType = 'text' | 'int4' | 'int8' | 'float8' | 'uuid' | 'timestamptz' | 'jsonb';
export type BinaryColumn<R> = { name: keyof R & string; type: BinaryType };

/** `PGCOPY\n\377\r\n\0`, no flags, no header extension. */
const SIGNATURE = Buffer.from([0x50, 0x47, 0x43, 0x4f, 0x50, 0x59, 0x0a, 0xff, 0x0d, 0x0a, 0x00, 0, 0, 0, 0, 0, 0, 0, 0]);
/** PostgreSQL's timestamps count µs from 2000-01-01 UTC. */
const EPOCH_MS = Date.UTC(2000, 0, 1);
const TWO_32 = 4294967296;
/** 0001-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z: the timestamps written here as bytes. */
const FIRST_MS = -62_135_596_800_000;
const LAST_MS = 253_402_300_799_999;
/** A hex digit's value by char code, -1 for any other. */
const HEX = new Int8Array(128).fill(-1);
for (let i = 0; i < 16; i++) {
  HEX['0123456789abcdef'.charCodeAt(i)] = i;
  HEX['0123456789ABCDEF'.charCodeAt(i)] = i;
}
// Node's own write of UTF-8 at an offset, without Buffer#write's reading of its arguments (where the runtime has it).
const utf8Write = (Buffer.prototype as { utf8Write?: (this: Buffer, s: string, offset: number) => number }).utf8Write;
/** Text this short is written by a loop here when it is ASCII: cheaper than a call into the encoder. */
const SHORT = 64;

/**
 * The rows in COPY's binary format, the columns in the order given, or null when a value is not
 * what its column's binary form takes (a number that is not an integer for an integer column, a
 * uuid or a timestamp not written as this process writes them, anything but a string for text):
 * then copy them as text. As on the other paths U+0000 becomes U+FFFD (and a lone surrogate
 * U+FFFD in UTF-8: projections/storable.ts), and a number that is not finite is null.
 */
export function copyBinary<R extends Record<string, unknown>>(rows: readonly R[], columns: readonly BinaryColumn<R>[]): Buffer | null {
  let buf = Buffer.allocUnsafe(Math.max(4096, rows.length * 512));
  SIGNATURE.copy(buf, 0);
  let at = SIGNATURE.length;
  const room = (n: number) => {
    if (at + n <= buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(buf.length * 2, at + n));
    buf.copy(grown, 0, 0, at);
    buf = grown;
  };
  const int32 = (v: number, to: number) => {
    buf[to] = v >>> 24;
    buf[to + 1] = v >>> 16;
    buf[to + 2] = v >>> 8;
    buf[to + 3] = v;
  };
  /** A 64-bit integer given as a safe integer. */
  const int64 = (v: number, to: number) => {
    const hi = Math.floor(v / TWO_32);
    int32(hi, to);
    int32(v - hi * TWO_32, to + 4);
  };
  /** `s` as UTF-8 after a length; `lead` a byte before it (jsonb's version), -1 for none. */
  const text = (s: string, lead: number) => {
    s = storableText(s);
    const head = lead < 0 ? 4 : 5;
    room(head + s.length * 3);
    const from = at + head;
    let n = -1;
    if (s.length <= SHORT) {
      n = 0;
      for (; n < s.length; n++) {
        const c = s.charCodeAt(n);
        if (c > 0x7f) break;
        buf[from + n] = c;
      }
      if (n < s.length) n = -1;
    }
    if (n < 0) n = utf8Write ? utf8Write.call(buf, s, from) : buf.write(s, from, 'utf8');
    if (lead >= 0) buf[at + 4] = lead;
    int32(n + head - 4, at);
    at = from + n;
  };
  /** A canonical uuid's 16 bytes; false when it is not one. */
  const uuid = (s: string): boolean => {
    if (s.length !== 36 || s.charCodeAt(8) !== 45 || s.charCodeAt(13) !== 45 || s.charCodeAt(18) !== 45 || s.charCodeAt(23) !== 45) return false;
    let to = at + 4;
    for (let i = 0; i < 36; i += 2) {
      if (i === 8 || i === 13 || i === 18 || i === 23) i++;
      const c1 = s.charCodeAt(i);
      const c2 = s.charCodeAt(i + 1);
      const hi = c1 < 128 ? HEX[c1]! : -1;
      const lo = c2 < 128 ? HEX[c2]! : -1;
      if (hi < 0 || lo < 0) return false;
      buf[to++] = (hi << 4) | lo;
    }
    int32(16, at);
    at += 20;
    return true;
  };
  /**
   * A timestamp as Date.parse reads it (this process writes toISOString's): µs since 2000; false
   * outside the years 1–9999, which PostgreSQL's text input refuses (year 0, six-digit years):
   * such a row goes as text and fails there as it does on every other path.
   */
  const timestamp = (s: string): boolean => {
    const ms = isoMs(s);
    if (!(ms >= FIRST_MS && ms <= LAST_MS)) return false;
    int32(8, at);
    const us = (ms - EPOCH_MS) * 1000;
    if (Number.isSafeInteger(us)) int64(us, at + 4);
    else buf.writeBigInt64BE(BigInt(ms - EPOCH_MS) * 1000n, at + 4);
    at += 12;
    return true;
  };

  const width = columns.length;
  for (let r = 0; r < rows.length; r++) {
    const row = rows[r]!;
    room(2);
    buf[at] = width >>> 8;
    buf[at + 1] = width;
    at += 2;
    for (let i = 0; i < width; i++) {
      const c = columns[i]!;
      const v = row[c.name];
      if (v === null || v === undefined || (typeof v === 'number' && !Number.isFinite(v))) {
        room(4);
        int32(-1, at);
        at += 4;
        continue;
      }
      // The most a field other than text or jsonb takes (those make room themselves): a uuid's length and 16 bytes.
      room(20);
      switch (c.type) {
        case 'text':
          if (typeof v !== 'string') return null;
          text(v, -1);
          break;
        case 'jsonb':
          text(storableJson(v), 1);
          break;
        case 'int4':
          if (typeof v !== 'number' || !Number.isInteger(v) || v < -2147483648 || v > 2147483647) return null;
          int32(4, at);
          int32(v, at + 4);
          at += 8;
          break;
        case 'int8':
          if (typeof v !== 'number' || !Number.isSafeInteger(v)) return null;
          int32(8, at);
          int64(v, at + 4);
          at += 12;
          break;
        case 'float8':
          if (typeof v !== 'number') return null;
          int32(8, at);
          // −0 as 0, as the text forms write it.
          buf.writeDoubleBE(v === 0 ? 0 : v, at + 4);
          at += 12;
          break;
        case 'uuid':
          if (typeof v !== 'string' || !uuid(v)) return null;
          break;
        case 'timestamptz':
          if (typeof v !== 'string' || !timestamp(v)) return null;
          break;
        default: {
          const _never: never = c.type;
          return _never;
        }
      }
    }
  }
  room(2);
  buf[at++] = 0xff;
  buf[at++] = 0xff;
  return buf.subarray(0, at);
}
