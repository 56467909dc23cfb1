import Redis from 'ioredis';
import { createHmac, createSecretKey, hkdfSync, randomUUID } from 'node:crypto';
import { AuthConfig } from '../options/auth-config';
import { RedisConnection } from '../common/redis-connection';
import { KNOWN_ADDRESSES_PER_ACCOUNT, KnownAddresses, networkOf } from './known-addresses';

const DAY_MS = 24 * 3_600_000;

function configAt(clock: { now: number }): AuthConfig {
  return { jwtKey: createSecretKey(Buffer.alloc(32, 3)), clock: () => new Date(clock.now), rateLimit: {} } as AuthConfig;
}

describe(networkOf.name, () => {
  it.each([
    ['203.0.113.10', '203.0.113.10'],
    ['::ffff:203.0.113.10', '203.0.113.10'],
    ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2::/64'],
    ['2001:0db8:0001:0002::9', '2001:db8:1:2::/64'],
    ['2001:db8::1', '2001:db8:0:0::/64'],
    ['::1', '0:0:0:0::/64'],
    ['fe80::1%eth0', 'fe80:0:0:0::/64'],
  ])('reads %p as the network %p', (ip, network) => {
    expect(networkOf(ip)).toBe(network);
  });

  it.each(['unknown', '', 'not an address'])('has no network for %p', (ip) => {
    expect(networkOf(ip)).toBeNull();
  });
});

describe(KnownAddresses.name, () => {
  const clock = { now: 1_000_000 };
  let sut: KnownAddresses;

  beforeEach(() => {
    clock.now = 1_000_000;
    sut = new KnownAddresses(configAt(clock), { client: null } as RedisConnection);
  });

  it('knows a network once the account was used from it, for that account only', async () => {
    await sut.remember('ada@example.com', '203.0.113.10');

    await expect(sut.has('ada@example.com', '203.0.113.10')).resolves.toBe(true);
    await expect(sut.has('ada@example.com', '203.0.113.11')).resolves.toBe(false);
    await expect(sut.has('bob@example.com', '203.0.113.10')).resolves.toBe(false);
  });

  it('never knows a request without an address', async () => {
    await sut.remember('ada@example.com', 'unknown');

    await expect(sut.has('ada@example.com', 'unknown')).resolves.toBe(false);
  });

  it(`keeps the ${KNOWN_ADDRESSES_PER_ACCOUNT} most recently used networks of an account`, async () => {
    for (let i = 0; i <= KNOWN_ADDRESSES_PER_ACCOUNT; i++) {
      clock.now += 1000;
      await sut.remember('ada@example.com', `198.51.100.${i}`);
    }
    await sut.remember('ada@example.com', '198.51.100.1'); // used again: now the most recent

    await expect(sut.has('ada@example.com', '198.51.100.0')).resolves.toBe(false);
    await expect(sut.has('ada@example.com', '198.51.100.1')).resolves.toBe(true);
    await sut.remember('ada@example.com', '192.0.2.1');
    await expect(sut.has('ada@example.com', '198.51.100.2')).resolves.toBe(false);
    await expect(sut.has('ada@example.com', '198.51.100.1')).resolves.toBe(true);
  });

  it('forgets a network 30 days after its last use', async () => {
    await sut.remember('ada@example.com', '203.0.113.10');
    clock.now += 29 * DAY_MS;
    await expect(sut.has('ada@example.com', '203.0.113.10')).resolves.toBe(true);
    await sut.remember('ada@example.com', '203.0.113.10');
    clock.now += 29 * DAY_MS;
    await expect(sut.has('ada@example.com', '203.0.113.10')).resolves.toBe(true);
    clock.now += DAY_MS;

    await expect(sut.has('ada@example.com', '203.0.113.10')).resolves.toBe(false);
  });

  it('keys counters by account and network without revealing either', () => {
    const key = sut.pairKey('signin', 'ada@example.com', '2001:db8:1:2::5');

    expect(key).toMatch(/^[0-9a-f]{64}$/);
    expect(sut.pairKey('signin', 'ada@example.com', '2001:db8:1:2::6')).toBe(key);
    expect(sut.pairKey('signin', 'bob@example.com', '2001:db8:1:2::5')).not.toBe(key);
    expect(sut.pairKey('forgot-password', 'ada@example.com', '2001:db8:1:2::5')).not.toBe(key);
  });

  describe('in Redis', () => {
    let connection: RedisConnection;
    let redis: Redis;

    beforeAll(async () => {
      connection = new RedisConnection({ rateLimit: { redisUrl: 'redis://127.0.0.1:6379' } } as AuthConfig);
      await connection.onModuleInit();
      redis = connection.client!;
    });

    afterAll(async () => {
      await redis.quit();
    });

    it('shares what it knows between instances, bounded, with neither email nor address in it', async () => {
      clock.now = Date.now();
      const a = new KnownAddresses(configAt(clock), connection);
      const b = new KnownAddresses(configAt(clock), connection);
      const email = `${randomUUID()}@example.com`;
      const hmacKey = Buffer.from(hkdfSync('sha256', configAt(clock).jwtKey.export(), '', 'known client addresses', 32));
      const key = `auth:known-addresses:${createHmac('sha256', hmacKey).update(`account:${email}`).digest('hex')}`;
      try {
        for (let i = 0; i <= KNOWN_ADDRESSES_PER_ACCOUNT; i++) {
          clock.now += 1000;
          await a.remember(email, `198.51.100.${i}`);
        }

        await expect(b.has(email, '198.51.100.10')).resolves.toBe(true);
        await expect(b.has(email, '198.51.100.0')).resolves.toBe(false);
        const members = await redis.zrange(key, 0, -1);
        expect(members).toHaveLength(KNOWN_ADDRESSES_PER_ACCOUNT);
        for (const member of members) expect(member).toMatch(/^[0-9a-f]{64}$/);
        expect(await redis.pttl(key)).toBeGreaterThan(29 * DAY_MS);
      } finally {
        await redis.del(key);
        clock.now = 1_000_000;
      }
    });
  });
});
