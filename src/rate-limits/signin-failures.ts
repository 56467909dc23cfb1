import { Inject, Injectable } from '@nestjs/common';
import { createHash } from 'node:crypto';
import { AUTH_CONFIG, AuthConfig } from '../options/auth-config';
import { RedisConnection } from '../common/redis-connection';

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

/**
 * Per-account brake on password guessing: after `signinMaxFailures` failures for one email within the
 * window, sign-in for that email answers 429 until the window closes, whatever address the attempts come
 * from. Counted for unknown emails too, so the 429 does not reveal whether an account exists. The key is a
 * hash of the normalised email, so the store holds no addresses.
 */
@Injectable()
export class SigninFailureLimiter {
  private readonly store: FailureCounterStore;
  private readonly windowMs: number;
  readonly maxFailures: number;

  constructor(@Inject(AUTH_CONFIG) config: AuthConfig, redis: RedisConnection) {
    this.store = redis.client
      ? new RedisFailureCounterStore(redis)
      : new InMemoryFailureCounterStore(() => config.clock().getTime());
    this.windowMs = config.rateLimit.signinFailureWindowSeconds * 1000;
    this.maxFailures = config.rateLimit.signinMaxFailures;
  }

  /**
   * Counts an attempt before its password is checked, and says how long to wait (the attempt is then not
   * checked) or 0. Counting first is what bounds parallel guesses: checking the count and recording a
   * failure after a ~50 ms hash let 30 requests racing each other all through. A correct password clears
   * the count, so only failures remain counted.
   */
  async admit(email: string): Promise<number> {
    const window = await this.store.increment(keyOf(email), this.windowMs);
    return window.count > this.maxFailures ? Math.max(1, Math.ceil(window.resetInMs / 1000)) : 0;
  }

  async clear(email: string): Promise<void> {
    await this.store.clear(keyOf(email));
  }
}

function keyOf(normalizedEmail: string): string {
  return createHash('sha256').update(normalizedEmail).digest('hex');
}

/** The mail-sending routes whose requests are counted per address. */
export type MailRoute = 'forgot-password' | 'resend-verification';

/**
 * Per-account brake on the routes that send mail: at most `mailRequestsPerAccountPerHour` requests an
 * hour per email address and route, counted whether or not the address has an account, so the 429 says
 * nothing about accounts. It sits above the mail caps, which stop the mail itself (silently) first.
 */
@Injectable()
export class MailRequestLimiter {
  private readonly store: FailureCounterStore;
  readonly maxRequests: number;

  constructor(@Inject(AUTH_CONFIG) config: AuthConfig, redis: RedisConnection) {
    this.store = redis.client
      ? new RedisFailureCounterStore(redis, 'auth:mail-requests:')
      : new InMemoryFailureCounterStore(() => config.clock().getTime());
    this.maxRequests = config.rateLimit.mailRequestsPerAccountPerHour;
  }

  /** Counts the request; seconds to wait when it is over the limit, else 0. */
  async hit(route: MailRoute, email: string): Promise<number> {
    const window = await this.store.increment(keyOf(`${route}:${email}`), 3_600_000);
    return window.count > this.maxRequests ? Math.max(1, Math.ceil(window.resetInMs / 1000)) : 0;
  }
}
