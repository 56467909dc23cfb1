import { Inject, Injectable } from '@nestjs/common';
import { createHash } from 'node:crypto';
import { AUTH_CONFIG, AuthConfig } from '../options/auth-config';
import { RedisConnection } from '../common/redis-connection';
import { KnownAddresses } from './known-addresses';

export interface FailureWindow {
  /** Failures recorded in the current window. */
  count: number;
  /** Milliseconds until the window closes and the count starts again from zero. */
  resetInMs: number;
}

/** Counts events per key in fixed windows that start at the first event. */
export interface FailureCounterStore {
  get(key: string): Promise<FailureWindow>;
  increment(key: string, windowMs: number): Promise<FailureWindow>;
  clear(key: string): Promise<void>;
}

export class InMemoryFailureCounterStore implements FailureCounterStore {
  private readonly windows = new Map<string, { count: number; endsAt: number }>();
  private lastSweep = 0;

  constructor(private readonly now: () => number) {}

  async get(key: string): Promise<FailureWindow> {
    const window = this.windows.get(key);
    const now = this.now();
    if (!window || window.endsAt <= now) return { count: 0, resetInMs: 0 };
    return { count: window.count, resetInMs: window.endsAt - now };
  }

  async increment(key: string, windowMs: number): Promise<FailureWindow> {
    const now = this.now();
    this.sweep(now, windowMs);
    const current = this.windows.get(key);
    const window = current && current.endsAt > now ? current : { count: 0, endsAt: now + windowMs };
    window.count += 1;
    this.windows.set(key, window);
    return { count: window.count, resetInMs: window.endsAt - now };
  }

  async clear(key: string): Promise<void> {
    this.windows.delete(key);
  }

  /** Drops closed windows at most once per window length, so memory follows the active attackers only. */
  private sweep(now: number, windowMs: number): void {
    if (now - this.lastSweep < windowMs) return;
    this.lastSweep = now;
    for (const [key, window] of this.windows) if (window.endsAt <= now) this.windows.delete(key);
  }
}

/** Failure windows in Redis, shared by every instance; fails open while Redis is unreachable. */
export class RedisFailureCounterStore implements FailureCounterStore {
  private readonly redis: NonNullable<RedisConnection['client']>;

  constructor(
    private readonly connection: RedisConnection,
    private readonly prefix = 'auth:signin-failures:',
  ) {
    this.redis = connection.client!;
  }

  get(key: string): Promise<FailureWindow> {
    return this.connection.failOpen(async () => {
      const [count, ttl] = await this.redis.multi().get(this.prefix + key).pttl(this.prefix + key).exec().then(results);
      return { count: Number(count ?? 0), resetInMs: Math.max(0, Number(ttl)) };
    }, NOTHING_COUNTED);
  }

  increment(key: string, windowMs: number): Promise<FailureWindow> {
    const redisKey = this.prefix + key;
    return this.connection.failOpen(async () => {
      const [count, , ttl] = await this.redis
        .multi()
        .incr(redisKey)
        .pexpire(redisKey, windowMs, 'NX')
        .pttl(redisKey)
        .exec()
        .then(results);
      return { count: Number(count), resetInMs: Math.max(0, Number(ttl)) };
    }, NOTHING_COUNTED);
  }

  async clear(key: string): Promise<void> {
    await this.connection.failOpen(() => this.redis.del(this.prefix + key), 0);
  }
}

const NOTHING_COUNTED: FailureWindow = { count: 0, resetInMs: 0 };

function results(replies: [Error | null, unknown][] | null): unknown[] {
  if (!replies) throw new Error('Redis transaction was discarded');
  return replies.map(([error, value]) => {
    if (error) throw error;
    return value;
  });
}

/** What `SigninFailureLimiter.admit` decided about one attempt. */
export interface Admission {
  /** 0: check the password; else seconds until an attempt can be checked. */
  waitSeconds: number;
  /** The budget that applied (for the RateLimit fields). */
  limit: number;
  /** The account's own limit was reached: only a known network could still be let through. */
  pastAccountLimit: boolean;
}

const HOUR_MS = 3_600_000;

/**
 * Per-account brake on password guessing: after `signinMaxFailures` failures for one email within the
 * window, sign-in for that email answers 429 until the window closes. Counted for unknown emails too, so
 * the 429 does not reveal whether an account exists. The key is a hash of the normalised email, so the
 * store holds no addresses.
 *
 * Strangers with many addresses could keep that brake on for good and lock the owner out, so past it a
 * network the account was used from before (`KnownAddresses`) still gets through on a budget of its
 * own: half the limit, counting every attempt from that network for that account. Guessing from
 * anywhere else stays stopped; whoever shares the owner's network gets the smaller budget at most.
 */
@Injectable()
export class SigninFailureLimiter {
  private readonly store: FailureCounterStore;
  private readonly windowMs: number;
  readonly maxFailures: number;
  /** Failures one known network may add for an account once the account's own limit is reached. */
  readonly knownNetworkMaxFailures: number;

  constructor(
    @Inject(AUTH_CONFIG) config: AuthConfig,
    redis: RedisConnection,
    private readonly known: KnownAddresses,
  ) {
    this.store = redis.client
      ? new RedisFailureCounterStore(redis)
      : new InMemoryFailureCounterStore(() => config.clock().getTime());
    this.windowMs = config.rateLimit.signinFailureWindowSeconds * 1000;
    this.maxFailures = config.rateLimit.signinMaxFailures;
    this.knownNetworkMaxFailures = Math.max(1, Math.floor(this.maxFailures / 2));
  }

  /**
   * Counts an attempt from `ip` before its password is checked, and says how long to wait (the attempt
   * is then not checked) or 0, with the bound that ran out. Counting first is what bounds parallel
   * guesses: checking the count and recording a failure after a ~50 ms hash let 30 requests racing each
   * other all through. A correct password clears the counts, so only failures remain counted.
   */
  async admit(email: string, ip: string): Promise<Admission> {
    // Side by side: with Redis each is a round trip.
    const [known, account] = await Promise.all([this.known.has(email, ip), this.store.increment(keyOf(email), this.windowMs)]);
    // Counted from the first attempt, so that the network's own budget holds before the account's runs out.
    const network = known ? await this.store.increment(this.known.pairKey('signin', email, ip), this.windowMs) : null;
    if (account.count <= this.maxFailures) return { waitSeconds: 0, limit: this.maxFailures, pastAccountLimit: false };
    if (network === null) return { waitSeconds: secondsLeft(account), limit: this.maxFailures, pastAccountLimit: true };
    const waitSeconds = network.count <= this.knownNetworkMaxFailures ? 0 : secondsLeft(network);
    return { waitSeconds, limit: this.knownNetworkMaxFailures, pastAccountLimit: true };
  }

  /** The password was right (or the mailbox proved): the counts start again, and `ip`'s network is known. */
  async succeeded(email: string, ip: string): Promise<void> {
    await Promise.all([this.store.clear(keyOf(email)), this.store.clear(this.known.pairKey('signin', email, ip)), this.known.remember(email, ip)]);
  }
}

function secondsLeft(window: FailureWindow): number {
  return Math.max(1, Math.ceil(window.resetInMs / 1000));
}

function keyOf(normalizedEmail: string): string {
  return createHash('sha256').update(normalizedEmail).digest('hex');
}

/** The mail-sending routes whose requests are counted per email and client network. */
export type MailRoute = 'forgot-password' | 'resend-verification';

/**
 * Brake on the routes that send mail: at most `mailRequestsPerAccountPerHour` requests an hour per email
 * address, route and client network, counted whether or not the address has an account, so the 429 says
 * nothing about accounts. Per network, not per email alone: a budget shared by everyone was one strangers
 * could use up, and the owner would meet the 429. The mailbox itself is protected by the mail caps,
 * which stop the mail (silently) past 3 an hour per account; `ownerAllowance` lets a known network of the
 * account past them.
 */
@Injectable()
export class MailRequestLimiter {
  private readonly store: FailureCounterStore;
  readonly maxRequests: number;

  constructor(
    @Inject(AUTH_CONFIG) config: AuthConfig,
    redis: RedisConnection,
    private readonly known: KnownAddresses,
  ) {
    this.store = redis.client
      ? new RedisFailureCounterStore(redis, 'auth:mail-requests:')
      : new InMemoryFailureCounterStore(() => config.clock().getTime());
    this.maxRequests = config.rateLimit.mailRequestsPerAccountPerHour;
  }

  /** Counts the request; seconds to wait when it is over the limit, else 0. */
  async hit(route: MailRoute, email: string, ip: string): Promise<number> {
    const window = await this.store.increment(this.known.pairKey(route, email, ip), HOUR_MS);
    return window.count > this.maxRequests ? secondsLeft(window) : 0;
  }

  /**
   * Whether a mail the account's hourly cap refused may still go, because it was asked for from a
   * network the account is known on, which then has `perHour` such mails of its own. Strangers who used
   * up the cap cannot keep the owner's next link from coming.
   */
  async ownerAllowance(route: MailRoute, email: string, ip: string, perHour: number): Promise<boolean> {
    if (!(await this.known.has(email, ip))) return false;
    const window = await this.store.increment(this.known.pairKey(`${route}-owner-mail`, email, ip), HOUR_MS);
    return window.count <= perHour;
  }
}
