/**
 * Kafka's default partitioner (murmur2 of the key, positive, modulo the partition
 * count), so the file log and Kafka put a conversation on the same partition, and the
 * command and event topics (same partition count) share it.
 */
export function partitionFor(key: string, partitions: number): number {
  return (murmur2(new TextEncoder().encode(key)) & 0x7fffffff) % partitions;
}

function murmur2(data: Uint8Array): number {
  const m = 0x5bd1e995;
  const r = 24;
  const length = data.length;
  let h = (0x9747b28c ^ length) | 0;
  const length4 = length & ~3;
  for (let i = 0; i < length4; i += 4) {
    let k = data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
    k = Math.imul(k, m);
    k ^= k >>> r;
    k = Math.imul(k, m);
    h = Math.imul(h, m);
    h ^= k;
  }
  switch (length % 4) {
    case 3:
      h ^= (data[length4 + 2]! & 0xff) << 16;
    // falls through
    case 2:
      h ^= (data[length4 + 1]! & 0xff) << 8;
    // falls through
    case 1:
      h ^= data[length4]! & 0xff;
      h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h;
}
