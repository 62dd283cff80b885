import { Redis } from 'ioredis';
import type { Snapshot, SnapshotStore } from '../../actors/ports.ts';
import { parseSnapshot } from './validate.ts';

// Never replace a snapshot with an older one: a host that just lost the partition may
// still be writing while the new owner has moved on.
const PUT_IF_NEWER = `
local cur = redis.call('GET', KEYS[1])
if cur then
  local ok, doc = pcall(cjson.decode, cur)
  if ok and type(doc) == 'table' and tonumber(doc.seq) and tonumber(doc.seq) > tonumber(ARGV[2]) then return 0 end
end
if tonumber(ARGV[3]) > 0 then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3]) else redis.call('SET', KEYS[1], ARGV[1]) end
return 1`;

export type RedisSnapshotOptions = {
  url: string;
  /** Key prefix; the contract's keys are `gemello:snapshot:<conversationId>`. */
  prefix?: string;
  /** Expire snapshots after this long (0: never). The log is the truth, so an expired one only costs a slower tier. */
  ttlMs?: number;
};

/** Snapshots in Redis: `<prefix>snapshot:<id>` holds {conversationId, seq, eventId, position, state}. */
export function createRedisSnapshotStore(options: RedisSnapshotOptions): SnapshotStore & { redis: Redis; key(id: string): string } {
  const redis = new Redis(options.url, { lazyConnect: false, maxRetriesPerRequest: 2, enableOfflineQueue: true });
  redis.on('error', () => {}); // surfaced through the failing calls and /ready
  const prefix = options.prefix ?? 'gemello:';
  const key = (id: string) => `${prefix}snapshot:${id}`;
  const cpKey = (p: number) => `${prefix}checkpoint:${p}`;
  const ttl = options.ttlMs ?? 0;
  redis.defineCommand('gemelloPutIfNewer', { numberOfKeys: 1, lua: PUT_IF_NEWER });
  return {
    kind: 'redis',
    redis,
    key,
    async get(id) {
      const text = await redis.get(key(id));
      return text === null ? null : parseSnapshot(id, text);
    },
    async put(s) {
      await (redis as unknown as { gemelloPutIfNewer(k: string, v: string, seq: number, ttl: number): Promise<number> }).gemelloPutIfNewer(key(s.conversationId), JSON.stringify(s), s.seq, ttl);
    },
    async delete(id) {
      await redis.del(key(id));
    },
    async getCheckpoint(p) {
      const v = await redis.get(cpKey(p));
      return v === null ? null : Number(v);
    },
    async putCheckpoint(p, offset) {
      await redis.set(cpKey(p), String(offset));
    },
    async ping() {
      await redis.ping();
    },
    async close() {
      redis.disconnect();
    },
  };
}
