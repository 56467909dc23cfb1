import { Inject, Injectable } from '@nestjs/common';
import { createHmac, hkdfSync } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';
import { AUTH_CONFIG, AuthConfig } from '../options/auth-config';
import { RedisConnection } from '../common/redis-connection';

/** Addresses kept per account: the most recently used win, so a roaming owner's list stays short. */
export const KNOWN_ADDRESSES_PER_ACCOUNT = 10;
/** An address unused this long is forgotten. */
export const KNOWN_ADDRESS_TTL_MS = 30 * 24 * 3_600_000;

/**
 * The part of a client address that stays the same for one network: an IPv4 address, or the /64 of an
 * IPv6 one (privacy extensions change the rest every few hours). IPv4-mapped IPv6 counts as IPv4. Null
 * when there is no usable address.
 */
export function networkOf(ip: string): string | null {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) return mapped[1];
  if (isIPv4(ip)) return ip;
  if (!isIPv6(ip)) return null;
  const [head, tail = ''] = ip.toLowerCase().split('%', 1)[0].split('::');
  const left = head ? head.split(':') : [];
  const right = ip.includes('::') && tail ? tail.split(':') : [];
  const groups = ip.includes('::') ? [...left, ...Array(8 - left.length - right.length).fill('0'), ...right] : left;
  return `${groups.slice(0, 4).map((group) => group.replace(/^0+(?=.)/, '')).join(':')}::/64`;
}

/** Recently seen networks per account, most recent last in `seenAt` order. */
interface KnownAddressStore {
  remember(account: string, network: string, nowMs: number): Promise<void>;
  has(account: string, network: string, nowMs: number): Promise<boolean>;
}

class InMemoryKnownAddressStore implements KnownAddressStore {
  private readonly accounts = new Map<string, Map<string, number>>();
  private lastSweep = 0;

  async remember(account: string, network: string, nowMs: number): Promise<void> {
    this.sweep(nowMs);
    const seen = this.accounts.get(account) ?? new Map<string, number>();
    seen.delete(network); // re-inserted last: a Map keeps insertion order, so the first is the oldest
    seen.set(network, nowMs);
    while (seen.size > KNOWN_ADDRESSES_PER_ACCOUNT) seen.delete(seen.keys().next().value!);
    this.accounts.set(account, seen);
  }

  async has(account: string, network: string, nowMs: number): Promise<boolean> {
    const seenAt = this.accounts.get(account)?.get(network);
    return seenAt !== undefined && nowMs - seenAt < KNOWN_ADDRESS_TTL_MS;
  }

  /** At most once an hour: drops forgotten addresses and accounts left with none. */
  private sweep(nowMs: number): void {
    if (nowMs - this.lastSweep < 3_600_000) return;
    this.lastSweep = nowMs;
    for (const [account, seen] of this.accounts) {
      for (const [network, seenAt] of seen) if (nowMs - seenAt >= KNOWN_ADDRESS_TTL_MS) seen.delete(network);
      if (seen.size === 0) this.accounts.delete(account);
    }
  }
}

/** One sorted set per account (score: when last seen), shared by every instance; fails open. */
class RedisKnownAddressStore implements KnownAddressStore {
  private readonly prefix = 'auth:known-addresses:';

  constructor(private readonly connection: RedisConnection) {}

  async remember(account: string, network: string, nowMs: number): Promise<void> {
    const key = this.prefix + account;
    await this.connection.failOpen(
      () =>
        this.connection
          .client!.multi()
          .zadd(key, nowMs, network)
          .zremrangebyscore(key, '-inf', nowMs - KNOWN_ADDRESS_TTL_MS)
          .zremrangebyrank(key, 0, -(KNOWN_ADDRESSES_PER_ACCOUNT + 1))
          .pexpire(key, KNOWN_ADDRESS_TTL_MS)
          .exec(),
      null,
    );
  }

  async has(account: string, network: string, nowMs: number): Promise<boolean> {
    const seenAt = await this.connection.failOpen(() => this.connection.client!.zscore(this.prefix + account, network), null);
    return seenAt !== null && nowMs - Number(seenAt) < KNOWN_ADDRESS_TTL_MS;
  }
}

/**
 * The networks each account was used from by someone who knew its password or held its mailbox: a
 * successful sign-in, password change or password reset. The per-account limits let these through when strangers
 * have used up the account's budget (see README, "Rate limits and the owner's way in"). The store holds
 * neither emails nor addresses: both are keyed with an HMAC under a key derived from the JWT secret, so
 * even a copy of Redis cannot be searched for a given address.
 */
@Injectable()
export class KnownAddresses {
  private readonly store: KnownAddressStore;
  private readonly key: Buffer;
  private readonly now: () => number;

  constructor(@Inject(AUTH_CONFIG) config: AuthConfig, redis: RedisConnection) {
    this.store = redis.client ? new RedisKnownAddressStore(redis) : new InMemoryKnownAddressStore();
    this.key = Buffer.from(hkdfSync('sha256', config.jwtKey.export(), '', 'known client addresses', 32));
    this.now = () => config.clock().getTime();
  }

  async remember(email: string, ip: string): Promise<void> {
    const network = networkOf(ip);
    if (network !== null) await this.store.remember(this.digest(`account:${email}`), this.digest(`network:${network}`), this.now());
  }

  async has(email: string, ip: string): Promise<boolean> {
    const network = networkOf(ip);
    return network !== null && this.store.has(this.digest(`account:${email}`), this.digest(`network:${network}`), this.now());
  }

  /** A counter key for one account from one network (or one unusable address), revealing neither. */
  pairKey(purpose: string, email: string, ip: string): string {
    return this.digest(`${purpose}:${email}:${networkOf(ip) ?? ip}`);
  }

  private digest(value: string): string {
    return createHmac('sha256', this.key).update(value).digest('hex');
  }
}
