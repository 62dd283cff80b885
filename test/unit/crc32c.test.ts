import { Buffer } from 'node:buffer';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { crc32c } from '../../log/crc32c.ts';

const require = createRequire(import.meta.url);
const kafkajsCrc32C = require('kafkajs/src/protocol/recordBatch/crc32C/index.js') as (b: Buffer) => number;

/** Deterministic bytes (a linear congruential sequence), so a failure is the same on every run. */
function bytes(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1_664_525) + 1_013_904_223) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

describe('CRC-32C', () => {
  it('gives the check values of the Castagnoli CRC', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    expect(crc32c(Buffer.alloc(0))).toBe(0);
    expect(crc32c(Buffer.alloc(32))).toBe(0x8a9136aa);
    expect(crc32c(Buffer.alloc(32, 0xff))).toBe(0x62a8ab43);
  });

  it('agrees with the byte-by-byte CRC for every length up to 64 and large buffers, whole and in part', () => {
    for (let n = 0; n <= 64; n++) {
      const b = bytes(n, n + 1);
      expect(crc32c(b)).toBe(kafkajsCrc32C(b));
    }
    const big = bytes(70_001, 7);
    expect(crc32c(big)).toBe(kafkajsCrc32C(big));
    expect(crc32c(big, 13, 50_000)).toBe(kafkajsCrc32C(big.subarray(13, 50_000)));
  });
});
