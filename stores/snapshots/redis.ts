import { Redis } from 'ioredis';
import type { Snapshot, SnapshotStore } from '../../actors/ports.ts';
import { parseSnapshot } from './validate.ts';

// Never replace a snapshot with an older one: a host that just lost the partition may
// still be writing while the new owner has moved on. The stored seq is read from the
// document's head (puts write conversationId, then seq, first), not by decoding the whole
// document: a cjson.decode of the stored state made each put cost Redis time in proportion
// to the state's size (7.7 ms a call on average, 30 ms at 420 KB, in the collapse of issue
// 15), and every other command on the connection waited behind it. Only a document whose
// head does not say its seq is decoded.
const PUT_IF_NEWER = `
local cur = redis.call('GETRANGE', KEYS[1], 0, 511)
if cur ~= '' then
  local seq = tonumber(string.match(cur, '^{"conversationId":"[^"]*","seq":(%d+)[,}]'))
  if not seq then
    local ok, doc = pcall(cjson.decode, redis.call('GET', KEYS[1]))
    if ok and type(doc) == 'table' then seq = tonumber(doc.seq) end
  end
  if seq and seq > tonumber(ARGV[2]) then return 0 end
end
if tonumber(ARGV[3]) > 0 then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3]) else redis.call('SET', KEYS[1], ARGV[1]) end
return 1`;

/** How long a handover's hint of active conversations is kept: it is read by the next owner at once. */
const ACTIVE_HINT_MS = 60_000;

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
  // Surfaced through the failing calls and /ready; the last one says why a ping failed
  // (ioredis itself only says it gave up retrying: "Reached the max retries per request limit").
  let lastError: Error | null = null;
  redis.on('error', (err: Error) => void (lastError = err));
  redis.on('ready', () => void (lastError = null));
  const prefix = options.prefix ?? 'gemello:';
  const key = (id: string) => `${prefix}snapshot:${id}`;
  const cpKey = (p: number) => `${prefix}checkpoint:${p}`;
  const activeKey = (p: number) => `${prefix}active:${p}`;
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
      // conversationId and seq first: PUT_IF_NEWER reads the seq from the head.
      const text = JSON.stringify({ conversationId: s.conversationId, seq: s.seq, eventId: s.eventId, position: s.position, state: s.state });
      await (redis as unknown as { gemelloPutIfNewer(k: string, v: string, seq: number, ttl: number): Promise<number> }).gemelloPutIfNewer(key(s.conversationId), text, s.seq, ttl);
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
    async putActive(p, ids) {
      await redis.set(activeKey(p), JSON.stringify(ids), 'PX', ACTIVE_HINT_MS);
    },
    async getActive(p) {
      const v = await redis.get(activeKey(p));
      const ids: unknown = v === null ? [] : JSON.parse(v);
      return Array.isArray(ids) ? ids.filter((x): x is string => typeof x === 'string') : [];
    },
    async ping() {
      try {
        await redis.ping();
      } catch (err) {
        throw lastError ? new Error(lastError.message, { cause: err }) : err;
      }
    },
    async close() {
      redis.disconnect();
    },
  };
}
