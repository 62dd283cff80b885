import { Redis } from 'ioredis';
import type { Liveness } from '../../actors/ports.ts';

export type RedisLivenessOptions = {
  url: string;
  /** The sorted set of the group's leases: member → the time (ms) its lease runs out. */
  key: string;
};

/**
 * Leases in one Redis sorted set. The expiry is the writer's clock: the hosts of a
 * deployment share a clock closely enough for leases of a few hundred milliseconds
 * (one machine, or NTP-synchronised machines).
 */
export function createRedisLiveness(options: RedisLivenessOptions): Liveness {
  // No offline queue and quick failures: a renewal that cannot be made now is worthless later.
  const redis = new Redis(options.url, { lazyConnect: false, maxRetriesPerRequest: 0, enableOfflineQueue: false, connectTimeout: 1_000 });
  redis.on('error', () => {});
  return {
    async renew(member, ttlMs) {
      await redis.zadd(options.key, Date.now() + ttlMs, member);
    },
    async expired() {
      return redis.zrangebyscore(options.key, 0, Date.now());
    },
    async forget(members) {
      if (members.length) await redis.zrem(options.key, ...members);
    },
    async close() {
      redis.disconnect();
    },
  };
}
