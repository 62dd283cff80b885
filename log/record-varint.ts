// Kafka's record varints (record batches v2): zigzag-signed, 7 bits a byte, least significant
// first. Shared by the produce encoders (log/platformatic-produce.ts, log/kafkajs-produce.ts).
// Arithmetic, not bit operations: exact for any safe integer (timestamp deltas can pass 32 bits).

/** A signed varint's unsigned (zigzag) value. */
export const zigzag = (n: number): number => (n >= 0 ? n * 2 : -n * 2 - 1);

/** Bytes of an unsigned varint. */
export function uvarintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

/** Writes unsigned varint `n` into `b` at `at`; returns where it ends. */
export function writeUvarint(b: Uint8Array, at: number, n: number): number {
  while (n >= 0x80) {
    b[at++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  b[at++] = n;
  return at;
}

/** Bytes of a length-prefixed field (a key, a value, a header's key or value): a null one is the length −1 alone. */
export const bytesSize = (v: Uint8Array | null | undefined): number => (v == null ? 1 : uvarintSize(zigzag(v.length)) + v.length);
