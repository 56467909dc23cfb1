import { Logger } from '@nestjs/common';
import Redis from 'ioredis';
import { randomUUID } from 'node:crypto';
import { AuthConfig } from '../options/auth-config';
import { RedisConnection } from '../common/redis-connection';
import { createSecretKey } from 'node:crypto';
import { KnownAddresses } from './known-addresses';
import { InMemoryFailureCounterStore, MailRequestLimiter, RedisFailureCounterStore, SigninFailureLimiter } from './signin-failures';

// The Redis found or started by test/support/global-setup.mjs; none there means these tests are skipped.
const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const describeWithRedis = process.env.TEST_REDIS_MISSING ? describe.skip : describe;
const WINDOW_MS = 60_000;

function fakeClock(startMs = 1_000_000) {
  let nowMs = startMs;
  return {
    now: () => nowMs,
    advance: (ms: number) => {
      nowMs += ms;
    },
  };
}

function limiterConfig(clock: () => number, overrides: Partial<AuthConfig['rateLimit']> = {}): AuthConfig {
  return {
    jwtKey: createSecretKey(Buffer.alloc(32, 7)),
    clock: () => new Date(clock()),
    rateLimit: { perAddressPerMinute: 0, signinMaxFailures: 3, signinFailureWindowSeconds: 60, mailRequestsPerAccountPerHour: 2, ...overrides },
  } as AuthConfig;
}

const noRedis = { client: null } as RedisConnection;

function limiterOf(config: AuthConfig, redis: RedisConnection = noRedis): SigninFailureLimiter {
  return new SigninFailureLimiter(config, redis, new KnownAddresses(config, redis));
}

const STRANGER = '198.51.100.7';
const OWNER = '203.0.113.10';

describe(InMemoryFailureCounterStore.name, () => {
  let clock: ReturnType<typeof fakeClock>;
  let sut: InMemoryFailureCounterStore;

  beforeEach(() => {
    clock = fakeClock();
    sut = new InMemoryFailureCounterStore(clock.now);
  });

  it('reports nothing for an unknown key', async () => {
    await expect(sut.get('nobody')).resolves.toEqual({ count: 0, resetInMs: 0 });
  });

  it('counts failures and starts the window at the first one', async () => {
    await expect(sut.increment('ada', WINDOW_MS)).resolves.toEqual({ count: 1, resetInMs: WINDOW_MS });
    clock.advance(10_000);
    await expect(sut.increment('ada', WINDOW_MS)).resolves.toEqual({ count: 2, resetInMs: WINDOW_MS - 10_000 });
    await expect(sut.get('ada')).resolves.toEqual({ count: 2, resetInMs: WINDOW_MS - 10_000 });
  });

  it('keeps keys apart', async () => {
    await sut.increment('ada', WINDOW_MS);
    await sut.increment('ada', WINDOW_MS);
    await sut.increment('bob', WINDOW_MS);

    await expect(sut.get('ada')).resolves.toMatchObject({ count: 2 });
    await expect(sut.get('bob')).resolves.toMatchObject({ count: 1 });
  });

  it('forgets the count when the window closes', async () => {
    await sut.increment('ada', WINDOW_MS);
    clock.advance(WINDOW_MS - 1);
    await expect(sut.get('ada')).resolves.toEqual({ count: 1, resetInMs: 1 });

    clock.advance(1);

    await expect(sut.get('ada')).resolves.toEqual({ count: 0, resetInMs: 0 });
  });

  it('opens a new window on the first failure after one closed', async () => {
    await sut.increment('ada', WINDOW_MS);
    await sut.increment('ada', WINDOW_MS);
    clock.advance(WINDOW_MS);

    await expect(sut.increment('ada', WINDOW_MS)).resolves.toEqual({ count: 1, resetInMs: WINDOW_MS });
  });

  it('clears a key', async () => {
    await sut.increment('ada', WINDOW_MS);

    await sut.clear('ada');

    await expect(sut.get('ada')).resolves.toEqual({ count: 0, resetInMs: 0 });
  });

  it('sweeps closed windows out of memory', async () => {
    clock.advance(WINDOW_MS);
    await sut.increment('ada', WINDOW_MS);
    await sut.increment('bob', WINDOW_MS);
    expect(sut['windows'].size).toBe(2);

    clock.advance(WINDOW_MS);
    await sut.increment('eve', WINDOW_MS);

    expect([...sut['windows'].keys()]).toEqual(['eve']);
  });

  it('keeps open windows when it sweeps', async () => {
    await sut.increment('ada', WINDOW_MS);
    clock.advance(WINDOW_MS / 2);
    await sut.increment('bob', WINDOW_MS);
    clock.advance(WINDOW_MS / 2);

    await sut.increment('eve', WINDOW_MS);

    expect([...sut['windows'].keys()].sort()).toEqual(['bob', 'eve']);
    await expect(sut.get('bob')).resolves.toEqual({ count: 1, resetInMs: WINDOW_MS / 2 });
  });
});

describe(SigninFailureLimiter.name, () => {
  let clock: ReturnType<typeof fakeClock>;
  let sut: SigninFailureLimiter;

  beforeEach(() => {
    clock = fakeClock();
    sut = limiterOf(limiterConfig(clock.now));
  });

  async function attempts(email: string, times: number, ip = STRANGER): Promise<number[]> {
    const waits: number[] = [];
    for (let i = 0; i < times; i++) waits.push((await sut.admit(email, ip)).waitSeconds);
    return waits;
  }

  const waitOf = async (email: string, ip = STRANGER) => (await sut.admit(email, ip)).waitSeconds;

  it('admits attempts up to the maximum', async () => {
    await expect(attempts('ada@example.com', 3)).resolves.toEqual([0, 0, 0]);
  });

  it('refuses attempts beyond the maximum until the window closes', async () => {
    await attempts('ada@example.com', 3);

    await expect(waitOf('ada@example.com')).resolves.toBe(60);
    clock.advance(59_500);
    await expect(waitOf('ada@example.com')).resolves.toBe(1);
    clock.advance(500);
    await expect(waitOf('ada@example.com')).resolves.toBe(0);
  });

  it('rounds the wait up to whole seconds', async () => {
    await attempts('ada@example.com', 3);
    clock.advance(30_001);

    await expect(waitOf('ada@example.com')).resolves.toBe(30);
  });

  it('refuses only the account that failed', async () => {
    await attempts('ada@example.com', 4);

    await expect(waitOf('bob@example.com')).resolves.toBe(0);
  });

  it('refuses every address the account was never used from, whichever address failed', async () => {
    for (let i = 0; i < 3; i++) await sut.admit('ada@example.com', `198.51.100.${i}`);

    await expect(waitOf('ada@example.com', '192.0.2.1')).resolves.toBe(60);
    await expect(sut.admit('ada@example.com', '192.0.2.2')).resolves.toEqual({ waitSeconds: 60, limit: 3, pastAccountLimit: true });
  });

  it('starts the count again on success (a correct password)', async () => {
    await attempts('ada@example.com', 4);

    await sut.succeeded('ada@example.com', STRANGER);

    await expect(attempts('ada@example.com', 3)).resolves.toEqual([0, 0, 0]);
  });

  it('admits no more than the maximum of attempts made at once', async () => {
    const waits = await Promise.all(Array.from({ length: 30 }, () => waitOf('ada@example.com')));

    expect(waits.filter((wait) => wait === 0)).toHaveLength(3);
  });

  it('follows the configured maximum and window', async () => {
    sut = limiterOf(limiterConfig(clock.now, { signinMaxFailures: 1, signinFailureWindowSeconds: 900 }));

    await expect(attempts('ada@example.com', 2)).resolves.toEqual([0, 900]);
  });

  describe('past the limit, from a network the account was used from', () => {
    beforeEach(async () => {
      sut = limiterOf(limiterConfig(clock.now, { signinMaxFailures: 10 }));
      await sut.succeeded('ada@example.com', OWNER);
      await attempts('ada@example.com', 15); // strangers used up the account's budget
    });

    it('admits the owner, on a budget of half the limit', async () => {
      await expect(sut.admit('ada@example.com', OWNER)).resolves.toEqual({ waitSeconds: 0, limit: 5, pastAccountLimit: true });
      await expect(attempts('ada@example.com', 4, OWNER)).resolves.toEqual([0, 0, 0, 0]);
      await expect(sut.admit('ada@example.com', OWNER)).resolves.toEqual({ waitSeconds: 60, limit: 5, pastAccountLimit: true });
    });

    it('counts that budget from the first attempt of the window, before the account ran out', async () => {
      await sut.succeeded('bob@example.com', OWNER);
      await attempts('bob@example.com', 5, OWNER);
      await attempts('bob@example.com', 10);

      await expect(waitOf('bob@example.com', OWNER)).resolves.toBe(60);
    });

    it('treats the whole /64 of an IPv6 owner as one network', async () => {
      await sut.succeeded('eve@example.com', '2001:db8:1:2:aaaa::1');
      await attempts('eve@example.com', 15);

      await expect(waitOf('eve@example.com', '2001:db8:1:2:bbbb::9')).resolves.toBe(0);
      await expect(waitOf('eve@example.com', '2001:db8:1:3::1')).resolves.toBe(60);
    });

    it('forgets a network after 30 days', async () => {
      clock.advance(30 * 24 * 3_600_000);
      await attempts('ada@example.com', 15);

      await expect(waitOf('ada@example.com', OWNER)).resolves.toBe(60);
    });
  });
});

describe(MailRequestLimiter.name, () => {
  let clock: ReturnType<typeof fakeClock>;
  let sut: MailRequestLimiter;
  let known: KnownAddresses;

  beforeEach(() => {
    clock = fakeClock();
    const config = limiterConfig(clock.now);
    known = new KnownAddresses(config, noRedis);
    sut = new MailRequestLimiter(config, noRedis, known);
  });

  it('counts requests per email and client network, so strangers cannot spend the owner\'s budget', async () => {
    for (let i = 0; i < 5; i++) await sut.hit('forgot-password', 'ada@example.com', `198.51.100.${i}`);
    await sut.hit('forgot-password', 'ada@example.com', STRANGER);
    await sut.hit('forgot-password', 'ada@example.com', STRANGER);

    await expect(sut.hit('forgot-password', 'ada@example.com', STRANGER)).resolves.toBe(3600);
    await expect(sut.hit('forgot-password', 'ada@example.com', OWNER)).resolves.toBe(0);
    await expect(sut.hit('resend-verification', 'ada@example.com', STRANGER)).resolves.toBe(0);
  });

  it('lets a known network past the mail cap with an hourly allowance of its own', async () => {
    await known.remember('ada@example.com', OWNER);

    await expect(sut.ownerAllowance('forgot-password', 'ada@example.com', STRANGER, 2)).resolves.toBe(false);
    await expect(sut.ownerAllowance('forgot-password', 'ada@example.com', OWNER, 2)).resolves.toBe(true);
    await expect(sut.ownerAllowance('forgot-password', 'ada@example.com', OWNER, 2)).resolves.toBe(true);
    await expect(sut.ownerAllowance('forgot-password', 'ada@example.com', OWNER, 2)).resolves.toBe(false);
    clock.advance(3_600_000);
    await expect(sut.ownerAllowance('forgot-password', 'ada@example.com', OWNER, 2)).resolves.toBe(true);
  });
});

describeWithRedis(RedisFailureCounterStore.name, () => {
  const prefix = `test:signin-failures:${randomUUID()}:`;
  let redis: Redis;
  let connection: RedisConnection;
  let sut: RedisFailureCounterStore;

  beforeAll(async () => {
    connection = new RedisConnection({ rateLimit: { redisUrl: REDIS_URL } } as AuthConfig);
    await connection.onModuleInit();
    redis = connection.client!;
    sut = new RedisFailureCounterStore(connection, prefix);
  });

  afterEach(async () => {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
  });

  afterAll(async () => {
    await redis.quit();
  });

  it('reports nothing for an unknown key', async () => {
    await expect(sut.get('nobody')).resolves.toEqual({ count: 0, resetInMs: 0 });
  });

  it('counts failures under the prefix, with the window set by the first one', async () => {
    const first = await sut.increment('ada', WINDOW_MS);
    const second = await sut.increment('ada', WINDOW_MS);

    expect(first.count).toBe(1);
    expect(first.resetInMs).toBeGreaterThan(WINDOW_MS - 1_000);
    expect(first.resetInMs).toBeLessThanOrEqual(WINDOW_MS);
    expect(second.count).toBe(2);
    await expect(redis.get(`${prefix}ada`)).resolves.toBe('2');
  });

  it('does not extend the window on later failures', async () => {
    await sut.increment('ada', WINDOW_MS);

    const later = await sut.increment('ada', WINDOW_MS * 10);

    expect(later.resetInMs).toBeLessThanOrEqual(WINDOW_MS);
  });

  it('reads the count and the time left', async () => {
    await sut.increment('ada', WINDOW_MS);
    await sut.increment('ada', WINDOW_MS);

    const window = await sut.get('ada');

    expect(window.count).toBe(2);
    expect(window.resetInMs).toBeGreaterThan(0);
    expect(window.resetInMs).toBeLessThanOrEqual(WINDOW_MS);
  });

  it('forgets the count when the window closes', async () => {
    await sut.increment('ada', 50);

    await new Promise((resolve) => setTimeout(resolve, 120));

    await expect(sut.get('ada')).resolves.toEqual({ count: 0, resetInMs: 0 });
    await expect(sut.increment('ada', WINDOW_MS)).resolves.toMatchObject({ count: 1 });
  });

  it('clears a key', async () => {
    await sut.increment('ada', WINDOW_MS);

    await sut.clear('ada');

    await expect(sut.get('ada')).resolves.toEqual({ count: 0, resetInMs: 0 });
    await expect(redis.exists(`${prefix}ada`)).resolves.toBe(0);
  });

  it('keeps keys apart', async () => {
    await sut.increment('ada', WINDOW_MS);
    await sut.increment('bob', WINDOW_MS);
    await sut.increment('bob', WINDOW_MS);

    await expect(sut.get('ada')).resolves.toMatchObject({ count: 1 });
    await expect(sut.get('bob')).resolves.toMatchObject({ count: 2 });
  });

  it('counts every one of many concurrent failures', async () => {
    await Promise.all(Array.from({ length: 25 }, () => sut.increment('ada', WINDOW_MS)));

    await expect(sut.get('ada')).resolves.toMatchObject({ count: 25 });
  });

  it('backs a limiter that locks an account', async () => {
    const limiter = limiterOf(limiterConfig(Date.now), connection);
    const email = `${randomUUID()}@example.com`;
    try {
      for (let i = 0; i < 3; i++) await expect(limiter.admit(email, STRANGER)).resolves.toMatchObject({ waitSeconds: 0 });

      const { waitSeconds } = await limiter.admit(email, STRANGER);
      expect(waitSeconds).toBeGreaterThan(0);
      expect(waitSeconds).toBeLessThanOrEqual(60);
    } finally {
      await limiter.succeeded(email, STRANGER);
    }
    await expect(limiter.admit(email, STRANGER)).resolves.toMatchObject({ waitSeconds: 0 });
    await limiter.succeeded(email, STRANGER);
  });
});

describe(`${RedisFailureCounterStore.name} with Redis unreachable`, () => {
  it('fails open: counts nothing, throws nothing, and logs the outage once', async () => {
    const logged = jest.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
    // Port 1 on loopback: nothing listens there, so every connection attempt is refused at once.
    const connection = new RedisConnection({ rateLimit: { redisUrl: 'redis://127.0.0.1:1' } } as AuthConfig);
    try {
      await connection.onModuleInit();
      const sut = new RedisFailureCounterStore(connection, 'test:unreachable:');

      await expect(sut.increment('ada', WINDOW_MS)).resolves.toEqual({ count: 0, resetInMs: 0 });
      await expect(sut.get('ada')).resolves.toEqual({ count: 0, resetInMs: 0 });
      await expect(sut.clear('ada')).resolves.toBeUndefined();
      const outages = logged.mock.calls.filter(([message]) => String(message).includes('Redis is unreachable'));
      expect(outages).toHaveLength(1);
    } finally {
      await connection.onApplicationShutdown();
      logged.mockRestore();
    }
  });
});
