import { describe, expect, it } from 'vitest';
import { Buffer } from 'node:buffer';
import { copyBinary } from '../../projections/copy-binary.ts';
import { isoMs } from '../../projections/iso-ms.ts';
import type { BinaryColumn } from '../../projections/copy-binary.ts';

const SIGNATURE = '5047434f50590aff0d0a00' + '00000000' + '00000000';
const TRAILER = 'ffff';
const hex = (b: Buffer | null) => b?.toString('hex');
const be32 = (n: number) => Buffer.from([n >>> 24, n >>> 16, n >>> 8, n]).toString('hex');
const field = (bytes: Buffer) => be32(bytes.length) + bytes.toString('hex');
const utf8 = (s: string) => field(Buffer.from(s, 'utf8'));
const i64 = (n: bigint) => {
  const b = Buffer.alloc(8);
  b.writeBigInt64BE(n);
  return field(b);
};
/** The rows of a binary COPY stream, each as its fields' bytes (null for -1), read back from the signature to the trailer. */
function fields(b: Buffer): Array<Array<Buffer | null>> {
  expect(b.subarray(0, 19).toString('hex')).toBe(SIGNATURE);
  const rows: Array<Array<Buffer | null>> = [];
  let at = 19;
  for (;;) {
    const n = b.readInt16BE(at);
    at += 2;
    if (n === -1) break;
    const row: Array<Buffer | null> = [];
    for (let i = 0; i < n; i++) {
      const len = b.readInt32BE(at);
      at += 4;
      row.push(len < 0 ? null : b.subarray(at, at + len));
      at += Math.max(0, len);
    }
    rows.push(row);
  }
  expect(at).toBe(b.length);
  return rows;
}
const us2000 = (iso: string) => (BigInt(Date.parse(iso)) - BigInt(Date.UTC(2000, 0, 1))) * 1000n;

describe('rows in COPY binary format', () => {
  type Row = Record<string, unknown>;
  const columns: BinaryColumn<Row>[] = [
    { name: 'id', type: 'uuid' }, { name: 't', type: 'text' }, { name: 'n', type: 'int4' }, { name: 'big', type: 'int8' },
    { name: 'f', type: 'float8' }, { name: 'at', type: 'timestamptz' }, { name: 'j', type: 'jsonb' },
  ];

  it('writes the signature, each row as its fields in their types\' binary forms, null as -1, and the trailer', () => {
    const rows: Row[] = [
      { id: '0190A3B4-c5d6-7e8f-9a0b-1c2d3e4f5a6b', t: 'tab\tand \\N', n: -2, big: 2 ** 40 + 5, f: 42.5, at: '2026-12-02T15:00:00.123Z', j: { text: 'é "q"' } },
      { id: null, t: undefined, n: Number.NaN, big: null, f: Number.POSITIVE_INFINITY, at: null, j: null },
    ];
    const f = Buffer.alloc(8);
    f.writeDoubleBE(42.5);
    expect(hex(copyBinary(rows, columns))).toBe(
      SIGNATURE +
        '0007' + field(Buffer.from('0190a3b4c5d67e8f9a0b1c2d3e4f5a6b', 'hex')) + utf8('tab\tand \\N') + field(Buffer.from('fffffffe', 'hex')) +
        i64(2n ** 40n + 5n) + field(f) + i64(us2000('2026-12-02T15:00:00.123Z')) + be32(1 + Buffer.byteLength('{"text":"é \\"q\\""}')) + '01' +
        Buffer.from('{"text":"é \\"q\\""}').toString('hex') +
        '0007' + 'ffffffff'.repeat(7) +
        TRAILER,
    );
    expect(hex(copyBinary([], columns))).toBe(SIGNATURE + TRAILER);
  });

  it('writes timestamps before 1715 and after 2285 (beyond 2^53 µs from 2000) exactly, and leaves to text those PostgreSQL\'s text input refuses (year 0, six-digit years)', () => {
    const at = ['0001-01-01T00:00:00.000Z', '1000-01-01T00:00:00.000Z', '3000-06-15T12:30:45.678Z', '2024-02-29T23:59:59.999Z', '9999-12-31T23:59:59.999Z'];
    const cols: BinaryColumn<Row>[] = [{ name: 'at', type: 'timestamptz' }];
    expect(hex(copyBinary(at.map((a) => ({ at: a })), cols))).toBe(SIGNATURE + at.map((a) => '0001' + i64(us2000(a))).join('') + TRAILER);
    for (const refused of ['0000-06-01T00:00:00.000Z', '+010000-01-01T00:00:00.000Z', '-000001-01-01T00:00:00.000Z']) expect(copyBinary([{ at: refused }], cols), refused).toBeNull();
  });

  it('keeps every field whole however much room text left in the buffer (a uuid after multi-byte text), and writes -0 as 0', () => {
    const cols: BinaryColumn<Row>[] = [{ name: 't', type: 'text' }, { name: 'id', type: 'uuid' }, { name: 'f', type: 'float8' }, { name: 'n', type: 'int8' }];
    const id = '0190a3b4-c5d6-7e8f-9a0b-1c2d3e4f5a6b';
    // One row, its text (three UTF-8 bytes a character) of every length that ends it 0–40 bytes before the end of the first 4 KB buffer.
    for (let n = 1340; n <= 1357; n++) {
      const row: Row = { t: '漢'.repeat(n), id, f: n === 1350 ? -0 : n, n };
      const decoded = fields(copyBinary([row], cols)!);
      expect(decoded, `text of ${n}`).toHaveLength(1);
      const [t, u, f, i] = decoded[0]!;
      expect(t!.toString('utf8')).toBe(row.t);
      expect(u!.toString('hex'), `the uuid after a text of ${n}`).toBe(id.replaceAll('-', ''));
      expect(Object.is(f!.readDoubleBE(0), n === 1350 ? 0 : n)).toBe(true);
      expect(i!.readBigInt64BE(0)).toBe(BigInt(n));
    }
  });

  it('writes U+0000 as U+FFFD and a lone surrogate as U+FFFD in UTF-8, in short and long text, growing its buffer', () => {
    const cols: BinaryColumn<Row>[] = [{ name: 't', type: 'text' }];
    const long = (i: number) => `${'é€😀'.repeat(300 + i)}\u0000${i}`;
    const texts = ['NUL \u0000 here', 'lone \ud800 one', 'ascii only', ...Array.from({ length: 30 }, (_, i) => long(i))];
    const stored = (s: string) => s.replaceAll('\u0000', '\uFFFD');
    expect(hex(copyBinary(texts.map((t) => ({ t })), cols))).toBe(SIGNATURE + texts.map((t) => '0001' + utf8(stored(t))).join('') + TRAILER);
  });

  it('gives null (copy as text instead) for a value its column\'s binary form does not take', () => {
    const one = (type: BinaryColumn<Row>['type'], v: unknown) => copyBinary([{ v }], [{ name: 'v', type }]);
    for (const [type, v] of [
      ['int4', 1.5], ['int4', 2 ** 31], ['int4', '7'], ['int8', 2 ** 53], ['float8', '1'], ['text', 7], ['text', { a: 1 }],
      ['uuid', 'not-a-uuid'], ['uuid', '{0190a3b4-c5d6-7e8f-9a0b-1c2d3e4f5a6b}'], ['uuid', '0190a3b4-c5d6-7e8f-9a0b-1c2d3e4f5a6g'],
      ['timestamptz', 'yesterday'], ['timestamptz', 1],
    ] as const) {
      expect(one(type, v), `${type} ${String(v)}`).toBeNull();
    }
    expect(one('int4', -(2 ** 31))).not.toBeNull();
  });

  it('reads a timestamp as Date.parse does', () => {
    const some = ['1970-01-01T00:00:00.000Z', '0000-01-01T00:00:00.000Z', '0000-03-01T00:00:00.000Z', '1999-12-31T23:59:59.999Z', '2000-02-29T00:00:00.000Z',
      '2100-03-01T00:00:00.000Z', '9999-12-31T23:59:59.999Z', '2026-02-31T10:00:00.000Z', '2026-13-01T00:00:00.000Z', '2026-01-01T24:00:00.000Z',
      '2026-12-02T15:00:00Z', '2026-12-02T15:00:00.000+01:00', 'abcd-01-01T00:00:00.000Z', '+275760-09-13T00:00:00.000Z', ''];
    for (let i = 0; i < 2_000; i++) some.push(new Date(Math.floor((Math.random() * 2 - 0.5) * 1e13)).toISOString());
    for (const s of some) expect(isoMs(s), s).toBe(Date.parse(s));
  });
});
