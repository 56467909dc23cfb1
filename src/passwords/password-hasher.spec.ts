import { Logger } from '@nestjs/common';
import * as argon2 from 'argon2';
import { AuthConfig } from '../options/auth-config';
import { HashingBusyException, PasswordHasher, warnOnSmallThreadPool } from './password-hasher';

// Calls through to the real argon2; recorded so a test can see which hash a check ran against.
jest.mock('argon2', () => {
  const actual = jest.requireActual<typeof import('argon2')>('argon2');
  return { ...actual, verify: jest.fn(actual.verify) };
});

const OWASP_MINIMUM = { memoryCost: 19456, timeCost: 2, parallelism: 1 };

type Cost = Pick<AuthConfig['passwordHashing'], 'memoryCost' | 'timeCost' | 'parallelism'>;
type Bounds = Pick<AuthConfig['passwordHashing'], 'maxConcurrent' | 'maxQueued'>;

function configWith(cost: Cost = OWASP_MINIMUM, bounds: Bounds = { maxConcurrent: 2, maxQueued: 64 }): AuthConfig {
  return { passwordHashing: { ...cost, ...bounds } } as AuthConfig;
}

function paramsOf(hash: string): Record<string, number> {
  const params = hash.split('$')[3];
  return Object.fromEntries(params.split(',').map((pair) => pair.split('=')).map(([key, value]) => [key, Number(value)]));
}

describe(PasswordHasher.name, () => {
  let sut: PasswordHasher;

  beforeAll(async () => {
    sut = new PasswordHasher(configWith());
    await sut.onModuleInit();
  });

  describe('hash', () => {
    it('produces argon2id with at least the OWASP minimum cost', async () => {
      const hash = await sut.hash('correct horse battery');

      expect(hash.startsWith('$argon2id$v=19$')).toBe(true);
      const { m, t, p } = paramsOf(hash);
      expect(m).toBeGreaterThanOrEqual(19456);
      expect(t).toBeGreaterThanOrEqual(2);
      expect(p).toBeGreaterThanOrEqual(1);
    });

    it('uses the configured cost', async () => {
      const stronger = new PasswordHasher(configWith({ memoryCost: 32768, timeCost: 3, parallelism: 2 }));

      expect(paramsOf(await stronger.hash('correct horse battery'))).toEqual({ m: 32768, t: 3, p: 2 });
    });

    it('salts each hash uniquely', async () => {
      const [first, second] = await Promise.all([sut.hash('same password'), sut.hash('same password')]);

      expect(first).not.toBe(second);
      expect(first.split('$')[4]).not.toBe(second.split('$')[4]);
    });

    it('never stores the password itself', async () => {
      const hash = await sut.hash('visible-password');

      expect(hash).not.toContain('visible-password');
    });
  });

  describe('verify', () => {
    it('matches the password that was hashed', async () => {
      const hash = await sut.hash('correct horse battery');

      await expect(sut.verify(hash, 'correct horse battery')).resolves.toBe('match');
    });

    it.each([
      ['a different password', 'wrong horse battery'],
      ['a different case', 'Correct horse battery'],
      ['a trimmed copy', 'correct horse battery'.trim() + ' '],
      ['an empty string', ''],
    ])('rejects %s', async (_case, attempt) => {
      const hash = await sut.hash('correct horse battery');

      await expect(sut.verify(hash, attempt)).resolves.toBe('mismatch');
    });

    it('matches any Unicode exactly as typed', async () => {
      const hash = await sut.hash('пароль 🔑 密码');

      await expect(sut.verify(hash, 'пароль 🔑 密码')).resolves.toBe('match');
      await expect(sut.verify(hash, 'пароль 🔑 密码'.normalize('NFD') + '\u0301')).resolves.toBe('mismatch');
    });

    it.each([
      ['a higher time cost', { timeCost: 3 }],
      ['a higher memory cost', { memoryCost: 32768 }],
      ['more lanes', { parallelism: 2 }],
    ])('asks for a rehash when the stored hash used %s', async (_case, params) => {
      const stored = await argon2.hash('correct horse battery', { type: argon2.argon2id, ...OWASP_MINIMUM, ...params });

      await expect(sut.verify(stored, 'correct horse battery')).resolves.toBe('match-needs-rehash');
    });

    it('asks for a rehash when the configured cost rose above the stored one', async () => {
      const stored = await sut.hash('correct horse battery');
      const stronger = new PasswordHasher(configWith({ ...OWASP_MINIMUM, timeCost: 3 }));

      await expect(stronger.verify(stored, 'correct horse battery')).resolves.toBe('match-needs-rehash');
    });

    it('asks for a rehash of an argon2i hash with the same cost', async () => {
      const stored = await argon2.hash('correct horse battery', { type: argon2.argon2i, ...OWASP_MINIMUM });

      await expect(sut.verify(stored, 'correct horse battery')).resolves.toBe('match-needs-rehash');
    });

    it('does not ask for a rehash on a wrong password against an old hash', async () => {
      const stored = await argon2.hash('correct horse battery', { type: argon2.argon2i, ...OWASP_MINIMUM });

      await expect(sut.verify(stored, 'wrong')).resolves.toBe('mismatch');
    });

    it('answers mismatch when there is no stored hash, after doing the work of a real check', async () => {
      const verifySpy = jest.mocked(argon2.verify);
      verifySpy.mockClear();

      await expect(sut.verify(null, 'any password')).resolves.toBe('mismatch');

      expect(verifySpy).toHaveBeenCalledTimes(1);
      const [dummyHash, password] = verifySpy.mock.calls[0];
      expect(password).toBe('any password');
      expect(dummyHash.startsWith('$argon2id$')).toBe(true);
      expect(paramsOf(dummyHash)).toEqual({ m: 19456, t: 2, p: 1 });
      await expect(verifySpy.mock.results[0].value).resolves.toBe(false);
    });

    it.each(['', 'not a hash', '$2b$12$abcdefghijklmnopqrstuuvwxyzABCDEFGHIJKLMNOPQRSTUVWXY', '$argon2id$v=19$m=1,t=1,p=1$x$y'])(
      'answers mismatch for the garbage stored hash %p',
      async (stored) => {
        await expect(sut.verify(stored, 'any password')).resolves.toBe('mismatch');
      },
    );
  });
});

describe(`${PasswordHasher.name} under load`, () => {
  it('runs at most maxConcurrent hashes at once and refuses beyond maxQueued waiting with a 503', async () => {
    const sut = new PasswordHasher(configWith(OWASP_MINIMUM, { maxConcurrent: 1, maxQueued: 2 }));
    const accepted = [sut.hash('first password'), sut.hash('second password'), sut.hash('third password')];

    await expect(sut.hash('fourth password')).rejects.toBeInstanceOf(HashingBusyException);
    await expect(Promise.all(accepted)).resolves.toHaveLength(3);
    await expect(sut.hash('after the flood')).resolves.toMatch(/^\$argon2id\$/);
  });

  it('answers a verify beyond the queue with 503 too, not with a mismatch', async () => {
    const sut = new PasswordHasher(configWith(OWASP_MINIMUM, { maxConcurrent: 1, maxQueued: 0 }));
    await sut.onModuleInit();
    const stored = await sut.hash('correct horse battery');
    const running = sut.verify(stored, 'correct horse battery');

    await expect(sut.verify(stored, 'correct horse battery')).rejects.toBeInstanceOf(HashingBusyException);
    await expect(running).resolves.toBe('match');
  });
});

describe(warnOnSmallThreadPool.name, () => {
  const saved = process.env.UV_THREADPOOL_SIZE;
  let warnings: string[];

  beforeEach(() => {
    warnings = [];
    jest.spyOn(Logger.prototype, 'warn').mockImplementation((message: unknown) => {
      warnings.push(String(message));
    });
  });

  afterEach(() => {
    jest.restoreAllMocks();
    if (saved === undefined) delete process.env.UV_THREADPOOL_SIZE;
    else process.env.UV_THREADPOOL_SIZE = saved;
  });

  it("warns when libuv's default pool of 4 cannot hold the hashes plus two threads for other work", () => {
    delete process.env.UV_THREADPOOL_SIZE;
    warnOnSmallThreadPool(4);
    expect(warnings).toEqual([expect.stringContaining('start the process with UV_THREADPOOL_SIZE=6')]);
  });

  it('stays quiet when UV_THREADPOOL_SIZE leaves room', () => {
    process.env.UV_THREADPOOL_SIZE = '6';
    warnOnSmallThreadPool(4);
    delete process.env.UV_THREADPOOL_SIZE;
    warnOnSmallThreadPool(2);
    expect(warnings).toEqual([]);
  });
});
