import { availableParallelism } from 'node:os';
import { createSecretKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { MIN_JWT_SECRET_BYTES, resolveAuthConfig } from './auth-config';
import type { AuthModuleOptions } from './auth-options.interface';

const SECRET = 's'.repeat(MIN_JWT_SECRET_BYTES);

function options(overrides: Partial<AuthModuleOptions> = {}): AuthModuleOptions {
  return { jwtSecret: SECRET, passwordResetUrl: 'https://app.example.com/reset', ...overrides };
}

describe(resolveAuthConfig.name, () => {
  describe('defaults', () => {
    it('fills every optional setting', () => {
      const sut = resolveAuthConfig(options());

      expect(sut).toMatchObject({
        jwtIssuer: 'auth-service',
        jwtAudience: 'auth-service',
        accessTokenTtlSeconds: 1800,
        refreshTokenTtlSeconds: 30 * 86_400,
        refreshTokenReuseGraceSeconds: 10,
        refreshTokenCookie: false,
        passwordResetTokenTtlSeconds: 1800,
        appName: 'Auth Service',
        emailVerificationTokenTtlSeconds: 86_400,
        requireVerifiedEmail: false,
        mail: {
          from: 'no-reply@localhost',
          smtpUrl: undefined,
          outputDir: './data/mail',
          maxAttempts: 10,
          retryInitialDelayMs: 5_000,
          retryMaxDelayMs: 300_000,
          pollIntervalMs: 1_000,
        },
        rateLimit: {
          perAddressPerMinute: 60,
          signinMaxFailures: 10,
          signinFailureWindowSeconds: 900,
          redisUrl: undefined,
          passwordResetMailsPerHour: 3,
          verificationMailsPerHour: 3,
        },
        passwordHashing: { memoryCost: 19456, timeCost: 2, parallelism: 1 },
      });
      expect(sut.passwordResetUrl.href).toBe('https://app.example.com/reset');
    });

    it('puts the verification page beside the reset page when none is given', () => {
      expect(resolveAuthConfig(options()).emailVerificationUrl.href).toBe('https://app.example.com/verify-email');
      const given = resolveAuthConfig(options({ emailVerificationUrl: 'https://accounts.example.com/confirm?lang=en' }));
      expect(given.emailVerificationUrl.href).toBe('https://accounts.example.com/confirm?lang=en');
    });

    it('puts the email change page beside the reset page when none is given, and gives its link 30 minutes', () => {
      const sut = resolveAuthConfig(options());
      expect(sut.emailChangeUrl.href).toBe('https://app.example.com/confirm-email');
      expect(sut.emailChangeTokenTtlSeconds).toBe(1800);
      expect(sut.rateLimit.emailChangeMailsPerHour).toBe(5);
      expect(resolveAuthConfig(options({ emailChangeUrl: 'https://accounts.example.com/email?x=1' })).emailChangeUrl.href).toBe('https://accounts.example.com/email?x=1');
    });

    it('uses the real time by default', () => {
      const before = Date.now();
      const now = resolveAuthConfig(options()).clock().getTime();

      expect(now).toBeGreaterThanOrEqual(before);
      expect(now).toBeLessThanOrEqual(Date.now());
    });

    it('keeps the given values', () => {
      const clock = () => new Date(0);
      const sut = resolveAuthConfig(
        options({
          jwtIssuer: 'issuer',
          jwtAudience: 'audience',
          accessTokenTtlSeconds: 60,
          rateLimit: { perAddressPerMinute: 0, signinMaxFailures: 3, redisUrl: 'redis://cache' },
          passwordHashing: { memoryCost: 65536, timeCost: 3, parallelism: 2 },
          clock,
        }),
      );

      expect(sut).toMatchObject({
        jwtIssuer: 'issuer',
        jwtAudience: 'audience',
        accessTokenTtlSeconds: 60,
        rateLimit: { perAddressPerMinute: 0, signinMaxFailures: 3, signinFailureWindowSeconds: 900, redisUrl: 'redis://cache' },
        passwordHashing: { memoryCost: 65536, timeCost: 3, parallelism: 2 },
      });
      expect(sut.clock).toBe(clock);
    });
  });

  describe('refresh tokens', () => {
    it.each([{ refreshTokenTtlSeconds: 0 }, { refreshTokenTtlSeconds: 1.5 }, { refreshTokenReuseGraceSeconds: -1 }])(
      'refuses %j',
      (refresh) => {
        expect(() => resolveAuthConfig(options(refresh))).toThrow(new RegExp(Object.keys(refresh)[0]));
      },
    );

    it('accepts a grace window of 0 (every reuse revokes)', () => {
      expect(resolveAuthConfig(options({ refreshTokenReuseGraceSeconds: 0 })).refreshTokenReuseGraceSeconds).toBe(0);
    });
  });

  describe('jwtSecret', () => {
    it.each([
      ['a string', 's'.repeat(MIN_JWT_SECRET_BYTES - 1)],
      ['a Buffer', randomBytes(MIN_JWT_SECRET_BYTES - 1)],
      ['a KeyObject', createSecretKey(randomBytes(MIN_JWT_SECRET_BYTES - 1))],
    ])('refuses %s shorter than 32 bytes', (_kind, jwtSecret) => {
      expect(() => resolveAuthConfig(options({ jwtSecret }))).toThrow(/jwtSecret/);
    });

    it.each([
      ['a string', 's'.repeat(MIN_JWT_SECRET_BYTES)],
      ['a Buffer', randomBytes(MIN_JWT_SECRET_BYTES)],
      ['a KeyObject', createSecretKey(randomBytes(MIN_JWT_SECRET_BYTES))],
    ])('turns %s of 32 bytes into a secret KeyObject', (_kind, jwtSecret) => {
      const key = resolveAuthConfig(options({ jwtSecret })).jwtKey;

      expect(key.type).toBe('secret');
      expect(key.symmetricKeySize).toBe(MIN_JWT_SECRET_BYTES);
    });

    it('counts the bytes of a string, not its characters', () => {
      const twoBytesEach = 'é'.repeat(MIN_JWT_SECRET_BYTES / 2);

      expect(resolveAuthConfig(options({ jwtSecret: twoBytesEach })).jwtKey.symmetricKeySize).toBe(MIN_JWT_SECRET_BYTES);
      expect(() => resolveAuthConfig(options({ jwtSecret: 'é'.repeat(MIN_JWT_SECRET_BYTES / 2 - 1) }))).toThrow(/jwtSecret/);
    });

    it('refuses an asymmetric key', () => {
      const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });

      expect(() => resolveAuthConfig(options({ jwtSecret: privateKey }))).toThrow(/jwtSecret/);
    });
  });

  describe('passwordHashing', () => {
    it.each([
      ['memoryCost', { memoryCost: 19455 }],
      ['timeCost', { timeCost: 1 }],
      ['parallelism', { parallelism: 0 }],
      ['memoryCost', { memoryCost: 19456.5 }],
    ])('refuses %s below the OWASP minimum or not an integer', (name, passwordHashing) => {
      expect(() => resolveAuthConfig(options({ passwordHashing }))).toThrow(`passwordHashing.${name}`);
    });

    it('accepts exactly the minimum', () => {
      const sut = resolveAuthConfig(options({ passwordHashing: { memoryCost: 19456, timeCost: 2, parallelism: 1 } }));

      expect(sut.passwordHashing).toMatchObject({ memoryCost: 19456, timeCost: 2, parallelism: 1 });
    });

    it('bounds hashing work to two per core, with a waiting room of 64 by default', () => {
      const sut = resolveAuthConfig(options());

      expect(sut.passwordHashing.maxConcurrent).toBe(2 * availableParallelism());
      expect(sut.passwordHashing.maxQueued).toBe(64);
    });

    it.each([{ maxConcurrent: 0 }, { maxQueued: -1 }])('refuses %j', (passwordHashing) => {
      expect(() => resolveAuthConfig(options({ passwordHashing }))).toThrow(/passwordHashing\.max/);
    });
  });

  describe('passwordResetUrl', () => {
    it.each(['', 'reset-password', '/reset-password', 'app.example.com/reset'])('refuses %p', (passwordResetUrl) => {
      expect(() => resolveAuthConfig(options({ passwordResetUrl }))).toThrow(/passwordResetUrl/);
    });

    it.each(['javascript:alert(1)', 'data:text/html,hi', 'ftp://example.com/reset'])(
      'refuses %p: a mailed link must be http or https',
      (passwordResetUrl) => {
        expect(() => resolveAuthConfig(options({ passwordResetUrl }))).toThrow(/passwordResetUrl/);
      },
    );
  });

  describe('emailVerificationUrl', () => {
    it.each(['verify-email', 'javascript:alert(1)', 'ftp://example.com/verify'])('refuses %p', (emailVerificationUrl) => {
      expect(() => resolveAuthConfig(options({ emailVerificationUrl }))).toThrow(/emailVerificationUrl/);
    });
  });

  describe('emailChangeUrl', () => {
    it.each(['confirm-email', 'javascript:alert(1)', 'ftp://example.com/confirm'])('refuses %p', (emailChangeUrl) => {
      expect(() => resolveAuthConfig(options({ emailChangeUrl }))).toThrow(/emailChangeUrl/);
    });
  });

  describe('other bounds', () => {
    it.each([
      ['accessTokenTtlSeconds', { accessTokenTtlSeconds: 0 }],
      ['passwordResetTokenTtlSeconds', { passwordResetTokenTtlSeconds: 1.5 }],
      ['rateLimit.perAddressPerMinute', { rateLimit: { perAddressPerMinute: -1 } }],
      ['rateLimit.signinMaxFailures', { rateLimit: { signinMaxFailures: 0 } }],
      ['rateLimit.signinFailureWindowSeconds', { rateLimit: { signinFailureWindowSeconds: 0 } }],
      ['rateLimit.passwordResetMailsPerHour', { rateLimit: { passwordResetMailsPerHour: 0 } }],
      ['rateLimit.verificationMailsPerHour', { rateLimit: { verificationMailsPerHour: 2.5 } }],
      ['emailVerificationTokenTtlSeconds', { emailVerificationTokenTtlSeconds: 0 }],
      ['mail.maxAttempts', { mail: { maxAttempts: 0 } }],
      ['mail.retryInitialDelayMs', { mail: { retryInitialDelayMs: 0 } }],
      ['mail.retryMaxDelayMs', { mail: { retryInitialDelayMs: 10_000, retryMaxDelayMs: 9_999 } }],
      ['mail.pollIntervalMs', { mail: { pollIntervalMs: -1 } }],
    ])('refuses a bad %s', (name, overrides: Partial<AuthModuleOptions>) => {
      expect(() => resolveAuthConfig(options(overrides))).toThrow(name);
    });
  });
});
