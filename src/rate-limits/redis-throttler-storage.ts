import type { ThrottlerStorage } from '@nestjs/throttler';
import type { ThrottlerStorageRecord } from '@nestjs/throttler/dist/throttler-storage-record.interface';
import type { RedisConnection } from '../common/redis-connection';

/**
 * One round trip per request: count the hit in a fixed window of `ttl` ms, and once the count passes
 * `limit` hold a block for `blockDuration` ms. Answers [hits, window ms left, block ms left (0 if none)].
 * Both keys share a hash tag, so the script also runs on Redis Cluster.
 */
const INCREMENT = `
local hits = redis.call('INCR', KEYS[1])
if hits == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local windowLeft = redis.call('PTTL', KEYS[1])
local blockLeft = redis.call('PTTL', KEYS[2])
if blockLeft <= 0 then
  blockLeft = 0
  if hits > tonumber(ARGV[2]) then
    redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
    blockLeft = tonumber(ARGV[3])
  end
end
return {hits, windowLeft, blockLeft}
`;

const NOT_COUNTED: ThrottlerStorageRecord = { totalHits: 0, timeToExpire: 0, isBlocked: false, timeToBlockExpire: 0 };

/**
 * The per-address throttler's counters in Redis, shared by every instance. While Redis is unreachable it
 * answers "not counted" (see `RedisConnection.failOpen`). Written here rather than taken from a storage
 * package so the module adds no peer-range conflicts to a host's install.
 */
export class RedisThrottlerStorage implements ThrottlerStorage {
  private readonly prefix = 'auth:throttle:';

  constructor(private readonly connection: RedisConnection) {}

  increment(key: string, ttl: number, limit: number, blockDuration: number, name: string): Promise<ThrottlerStorageRecord> {
    const tag = `{${name}:${key}}`;
    return this.connection.failOpen(async () => {
      const [hits, windowLeft, blockLeft] = (await this.connection.client!.eval(
        INCREMENT,
        2,
        `${this.prefix}${tag}:hits`,
        `${this.prefix}${tag}:block`,
        ttl,
        limit,
        blockDuration,
      )) as [number, number, number];
      return {
        totalHits: hits,
        timeToExpire: Math.ceil(Math.max(windowLeft, 0) / 1000),
        isBlocked: blockLeft > 0,
        timeToBlockExpire: Math.ceil(blockLeft / 1000),
      };
    }, NOT_COUNTED);
  }
}
