import { Logger } from '@nestjs/common';
import Redis from 'ioredis';
import { randomUUID } from 'node:crypto';
import { AuthConfig } from '../options/auth-config';
import { RedisConnection } from '../common/redis-connection';
import { InMemoryFailureCounterStore, RedisFailureCounterStore, SigninFailureLimiter } from './signin-failures';

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
    clock: () => new Date(clock()),
    rateLimit: { perAddressPerMinute: 0, signinMaxFailures: 3, signinFailureWindowSeconds: 60, ...overrides },
  } as AuthConfig;
}

const noRedis = { client: null } as RedisConnection;

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
    sut = new SigninFailureLimiter(limiterConfig(clock.now), noRedis);
  });

  async function attempts(email: string, times: number): Promise<number[]> {
    const waits: number[] = [];
    for (let i = 0; i < times; i++) waits.push(await sut.admit(email));
    return waits;
  }

  it('admits attempts up to the maximum', async () => {
    await expect(attempts('ada@example.com', 3)).resolves.toEqual([0, 0, 0]);
  });

  it('refuses attempts beyond the maximum until the window closes', async () => {
    await attempts('ada@example.com', 3);

    await expect(sut.admit('ada@example.com')).resolves.toBe(60);
    clock.advance(59_500);
    await expect(sut.admit('ada@example.com')).resolves.toBe(1);
    clock.advance(500);
    await expect(sut.admit('ada@example.com')).resolves.toBe(0);
  });

  it('rounds the wait up to whole seconds', async () => {
    await attempts('ada@example.com', 3);
    clock.advance(30_001);

    await expect(sut.admit('ada@example.com')).resolves.toBe(30);
  });

  it('refuses only the account that failed', async () => {
    await attempts('ada@example.com', 4);

    await expect(sut.admit('bob@example.com')).resolves.toBe(0);
  });

  it('starts the count again on clear (a correct password)', async () => {
    await attempts('ada@example.com', 4);

    await sut.clear('ada@example.com');

    await expect(attempts('ada@example.com', 3)).resolves.toEqual([0, 0, 0]);
  });

  it('admits no more than the maximum of attempts made at once', async () => {
    const waits = await Promise.all(Array.from({ length: 30 }, () => sut.admit('ada@example.com')));

    expect(waits.filter((wait) => wait === 0)).toHaveLength(3);
  });

  it('follows the configured maximum and window', async () => {
    sut = new SigninFailureLimiter(limiterConfig(clock.now, { signinMaxFailures: 1, signinFailureWindowSeconds: 900 }), noRedis);

    await expect(attempts('ada@example.com', 2)).resolves.toEqual([0, 900]);
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
    const limiter = new SigninFailureLimiter(limiterConfig(Date.now), connection);
    const email = `${randomUUID()}@example.com`;
    try {
      for (let i = 0; i < 3; i++) await expect(limiter.admit(email)).resolves.toBe(0);

      const retryAfter = await limiter.admit(email);
      expect(retryAfter).toBeGreaterThan(0);
      expect(retryAfter).toBeLessThanOrEqual(60);
    } finally {
      await limiter.clear(email);
    }
    await expect(limiter.admit(email)).resolves.toBe(0);
    await limiter.clear(email);
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
