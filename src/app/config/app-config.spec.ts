import { ConfigError, loadAppConfig } from './app-config';

const VALID_SECRET = 'a-jwt-secret-that-is-well-over-32-bytes-long';

function env(overrides: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  return { JWT_SECRET: VALID_SECRET, ...overrides };
}

function configErrorOf(overrides: Record<string, string | undefined>): ConfigError {
  try {
    loadAppConfig(env(overrides));
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error(`expected a ConfigError for ${JSON.stringify(overrides)}`);
}

describe(loadAppConfig.name, () => {
  describe('defaults', () => {
    it('applies the documented defaults to an empty environment', () => {
      const sut = loadAppConfig({});

      expect(sut).toMatchObject({
        production: false,
        port: 3000,
        httpAdapter: 'fastify',
        database: { type: 'sqlite', path: './data/auth.sqlite' },
        redisUrl: undefined,
        jwtSecretGenerated: true,
        accessTokenExpireMinutes: 30,
        passwordResetTokenExpireMinutes: 30,
        passwordResetUrl: 'http://localhost:3000/reset-password',
        emailVerificationUrl: 'http://localhost:3000/verify-email',
        emailVerificationTokenExpireHours: 24,
        emailChangeUrl: 'http://localhost:3000/confirm-email',
        requireVerifiedEmail: false,
        smtpUrl: undefined,
        mailFrom: 'no-reply@localhost',
        mailMaxAttempts: 10,
        rateLimitPerMinute: 60,
        signinMaxFailures: 10,
        signinFailureWindowMinutes: 15,
        passwordResetMailsPerHour: 3,
        verificationMailsPerHour: 3,
        trustProxy: false,
      });
    });

    it('generates a fresh secret of at least 32 bytes outside production', () => {
      const first = loadAppConfig({});
      const second = loadAppConfig({});

      expect(Buffer.byteLength(first.jwtSecret)).toBeGreaterThanOrEqual(32);
      expect(first.jwtSecret).not.toBe(second.jwtSecret);
    });

    it('treats blank values as unset', () => {
      const sut = loadAppConfig(env({ PORT: '  ', MAIL_FROM: '' }));

      expect(sut.port).toBe(3000);
      expect(sut.mailFrom).toBe('no-reply@localhost');
    });

    it('reads the given values', () => {
      const sut = loadAppConfig(
        env({
          PORT: '8080',
          HTTP_ADAPTER: 'express',
          REDIS_URL: 'redis://cache:6379',
          ACCESS_TOKEN_EXPIRE_MINUTES: '5',
          PASSWORD_RESET_TOKEN_EXPIRE_MINUTES: '20',
          PASSWORD_RESET_URL: 'https://app.example.com/reset',
          SMTP_URL: 'smtp://user:pass@mail:587',
          MAIL_FROM: 'auth@example.com',
          RATE_LIMIT_PER_MINUTE: '0',
          SIGNIN_MAX_FAILURES: '3',
          SIGNIN_FAILURE_WINDOW_MINUTES: '60',
          EMAIL_VERIFICATION_URL: 'https://app.example.com/verify',
          EMAIL_VERIFICATION_TOKEN_EXPIRE_HOURS: '48',
          EMAIL_CHANGE_URL: 'https://app.example.com/confirm-email',
          REQUIRE_VERIFIED_EMAIL: 'true',
          MAIL_MAX_ATTEMPTS: '4',
          PASSWORD_RESET_MAILS_PER_HOUR: '2',
          VERIFICATION_MAILS_PER_HOUR: '5',
          REFRESH_TOKEN_EXPIRE_DAYS: '7',
          REFRESH_TOKEN_REUSE_GRACE_SECONDS: '0',
          REFRESH_TOKEN_COOKIE: 'true',
        }),
      );

      expect(sut).toMatchObject({
        port: 8080,
        httpAdapter: 'express',
        redisUrl: 'redis://cache:6379',
        jwtSecret: VALID_SECRET,
        jwtSecretGenerated: false,
        accessTokenExpireMinutes: 5,
        passwordResetTokenExpireMinutes: 20,
        passwordResetUrl: 'https://app.example.com/reset',
        smtpUrl: 'smtp://user:pass@mail:587',
        mailFrom: 'auth@example.com',
        rateLimitPerMinute: 0,
        signinMaxFailures: 3,
        signinFailureWindowMinutes: 60,
        emailVerificationUrl: 'https://app.example.com/verify',
        emailVerificationTokenExpireHours: 48,
        emailChangeUrl: 'https://app.example.com/confirm-email',
        requireVerifiedEmail: true,
        mailMaxAttempts: 4,
        passwordResetMailsPerHour: 2,
        verificationMailsPerHour: 5,
        refreshTokenExpireDays: 7,
        refreshTokenReuseGraceSeconds: 0,
        refreshTokenCookie: true,
      });
    });
  });

  describe('bad values', () => {
    it.each([
      ['PORT', 'abc'],
      ['PORT', '70000'],
      ['PORT', '-1'],
      ['PORT', '80.5'],
      ['ACCESS_TOKEN_EXPIRE_MINUTES', '0'],
      ['ACCESS_TOKEN_EXPIRE_MINUTES', '1e3'],
      ['REFRESH_TOKEN_EXPIRE_DAYS', '0'],
      ['REFRESH_TOKEN_EXPIRE_DAYS', '366'],
      ['REFRESH_TOKEN_REUSE_GRACE_SECONDS', '301'],
      ['REFRESH_TOKEN_REUSE_GRACE_SECONDS', '-1'],
      ['REFRESH_TOKEN_COOKIE', 'yes'],
      ['PASSWORD_RESET_TOKEN_EXPIRE_MINUTES', 'thirty'],
      ['PASSWORD_RESET_TOKEN_EXPIRE_MINUTES', '100000'],
      ['RATE_LIMIT_PER_MINUTE', '-5'],
      ['SIGNIN_MAX_FAILURES', '0'],
      ['SIGNIN_MAX_FAILURES', '101'],
      ['SIGNIN_FAILURE_WINDOW_MINUTES', '0'],
      ['REDIS_URL', 'not a url'],
      ['REDIS_URL', 'http://cache:6379'],
      ['PASSWORD_RESET_URL', 'reset-password'],
      ['PASSWORD_RESET_URL', 'ftp://example.com/reset'],
      ['SMTP_URL', 'mail.example.com:25'],
      ['SMTP_URL', 'https://mail.example.com'],
      ['DATABASE_URL', 'mysql://localhost/auth'],
      ['TRUST_PROXY', 'true'],
      ['HTTP_ADAPTER', 'koa'],
      ['HTTP_ADAPTER', 'Express'],
      ['JWT_SECRET', 'short'],
      ['EMAIL_VERIFICATION_URL', 'verify-email'],
      ['EMAIL_VERIFICATION_URL', 'javascript:alert(1)'],
      ['EMAIL_CHANGE_URL', 'confirm-email'],
      ['EMAIL_CHANGE_URL', 'javascript:alert(1)'],
      ['EMAIL_VERIFICATION_TOKEN_EXPIRE_HOURS', '0'],
      ['EMAIL_VERIFICATION_TOKEN_EXPIRE_HOURS', '169'],
      ['REQUIRE_VERIFIED_EMAIL', 'yes'],
      ['REQUIRE_VERIFIED_EMAIL', 'TRUE'],
      ['MAIL_MAX_ATTEMPTS', '0'],
      ['MAIL_MAX_ATTEMPTS', '101'],
      ['PASSWORD_RESET_MAILS_PER_HOUR', '0'],
      ['VERIFICATION_MAILS_PER_HOUR', 'many'],
    ])('%s=%p throws a ConfigError naming the variable', (name, value) => {
      const error = configErrorOf({ [name]: value });

      expect(error.message).toContain(name);
    });

    it('is a ConfigError, which is an Error', () => {
      expect(() => loadAppConfig(env({ PORT: 'x' }))).toThrow(ConfigError);
      expect(configErrorOf({ PORT: 'x' })).toBeInstanceOf(Error);
    });
  });

  describe('JWT_SECRET in production', () => {
    it('is required', () => {
      const error = configErrorOf({ NODE_ENV: 'production', JWT_SECRET: undefined });

      expect(error.message).toContain('JWT_SECRET');
    });

    it('refuses one shorter than 32 bytes', () => {
      const error = configErrorOf({ NODE_ENV: 'production', JWT_SECRET: 'x'.repeat(31) });

      expect(error.message).toContain('JWT_SECRET');
    });

    it('counts bytes, not characters', () => {
      // 16 characters of two bytes each: 32 bytes.
      const sut = loadAppConfig({ NODE_ENV: 'production', JWT_SECRET: 'é'.repeat(16) });

      expect(sut.jwtSecret).toBe('é'.repeat(16));
    });

    it('accepts one of 32 bytes', () => {
      const sut = loadAppConfig({ NODE_ENV: 'production', JWT_SECRET: 'x'.repeat(32) });

      expect(sut.production).toBe(true);
      expect(sut.jwtSecretGenerated).toBe(false);
    });

    it.each(['Production', 'PRODUCTION', ' production '])('reads NODE_ENV=%p as production: a secret is required', (nodeEnv) => {
      expect(configErrorOf({ NODE_ENV: nodeEnv, JWT_SECRET: undefined }).message).toContain('JWT_SECRET');
      expect(loadAppConfig({ NODE_ENV: nodeEnv, JWT_SECRET: VALID_SECRET }).production).toBe(true);
    });

    it.each(['staging', 'prod', 'live', 'Prodution'])(
      'requires a secret for NODE_ENV=%p too: a generated one is only for development and tests',
      (nodeEnv) => {
        const error = configErrorOf({ NODE_ENV: nodeEnv, JWT_SECRET: undefined });

        expect(error.message).toBe('JWT_SECRET is required unless NODE_ENV is unset, development or test');
      },
    );

    it.each([undefined, 'development', 'Development', 'test'])('generates one for NODE_ENV=%p', (nodeEnv) => {
      const sut = loadAppConfig({ NODE_ENV: nodeEnv });

      expect(sut.jwtSecretGenerated).toBe(true);
      expect(sut.production).toBe(false);
    });
  });

  describe('TRUST_PROXY', () => {
    it.each([
      ['1', 1],
      ['2', 2],
      ['0', 0],
      ['5', 5],
    ])('reads %p as a hop count', (raw, hops) => {
      expect(loadAppConfig(env({ TRUST_PROXY: raw })).trustProxy).toBe(hops);
    });

    it('reads a list of addresses, CIDRs and named ranges', () => {
      const sut = loadAppConfig(env({ TRUST_PROXY: ' loopback, 10.0.0.0/8 ,192.168.1.7,fd00::/8 ' }));

      expect(sut.trustProxy).toEqual(['loopback', '10.0.0.0/8', '192.168.1.7', 'fd00::/8']);
    });

    it.each(['true', '*'])('refuses %p, which would trust every hop', (raw) => {
      const error = configErrorOf({ TRUST_PROXY: raw });

      expect(error.message).toContain('TRUST_PROXY');
    });

    it.each(['6', '99', '1000000'])('refuses the hop count %p: beyond the real proxies it trusts what the client wrote', (raw) => {
      const error = configErrorOf({ TRUST_PROXY: raw });

      expect(error.message).toBe(`TRUST_PROXY hop count must be from 0 to 5 (the proxies in front of the app), got "${raw}"`);
    });

    it.each(['0.0.0.0/0', '::/0', '0.0.0.0/1', '128.0.0.0/7', '2000::/3', '::/15', 'fe00::/7', 'fc00::/6', '::ffff:0:0/96', '::ffff:0.0.0.0/100', '10.0.0.1, 0.0.0.0/0'])(
      'refuses %p, a range so wide that it trusts clients as proxies',
      (raw) => {
        const error = configErrorOf({ TRUST_PROXY: raw });

        expect(error.message).toMatch(/^TRUST_PROXY range ".*" is too wide: at least \/8 for IPv4 and \/16 for IPv6/);
      },
    );

    it.each(['10.0.0.0/8', '2400:cb00::/32', '2a06:98c0::/29', '::ffff:10.0.0.0/104', '::/128', 'fc00::/7', 'fd12:3456::/32', 'uniquelocal'])('accepts the range %p', (raw) => {
      expect(loadAppConfig(env({ TRUST_PROXY: raw })).trustProxy).toEqual([raw]);
    });

    it('refuses an entry that is not an address', () => {
      const error = configErrorOf({ TRUST_PROXY: '10.0.0.1, proxy.internal' });

      expect(error.message).toContain('TRUST_PROXY');
      expect(error.message).toContain('proxy.internal');
    });

    it.each(['10.0.0.300', '10.0.0.0/33', '::1/200', 'beef', '10.0.0.1/8/1', '10.0.0.0/x'])(
      'refuses %p, which the proxy trust list cannot compile',
      (raw) => {
        const error = configErrorOf({ TRUST_PROXY: raw });

        expect(error.message).toContain('TRUST_PROXY');
      },
    );
  });

  describe('CORS_ORIGINS', () => {
    it('is empty by default: no cross-origin access', () => {
      expect(loadAppConfig(env({})).corsOrigins).toEqual([]);
    });

    it('reads a list of origins', () => {
      expect(loadAppConfig(env({ CORS_ORIGINS: 'https://app.example.com, http://localhost:5173' })).corsOrigins).toEqual([
        'https://app.example.com',
        'http://localhost:5173',
      ]);
    });

    it.each(['*', 'https://app.example.com/', 'https://app.example.com/path', 'app.example.com', 'ftp://x.example'])(
      'refuses %p, which is not an origin',
      (raw) => {
        expect(configErrorOf({ CORS_ORIGINS: raw }).message).toContain('CORS_ORIGINS');
      },
    );
  });

  describe('DATABASE_URL', () => {
    it.each([
      ['postgres://user:pw@db:5432/auth', { type: 'postgres', url: 'postgres://user:pw@db:5432/auth' }],
      ['postgresql://user:pw@db/auth', { type: 'postgres', url: 'postgresql://user:pw@db/auth' }],
      ['sqlite:./tmp/test.sqlite', { type: 'sqlite', path: './tmp/test.sqlite' }],
      ['sqlite::memory:', { type: 'sqlite', path: ':memory:' }],
    ])('parses %p', (raw, target) => {
      expect(loadAppConfig(env({ DATABASE_URL: raw })).database).toEqual(target);
    });

    it.each(['mysql://db/auth', 'sqlite:', 'postgres:db', './auth.sqlite'])('refuses %p', (raw) => {
      const error = configErrorOf({ DATABASE_URL: raw });

      expect(error.message).toMatch(/^DATABASE_URL /);
    });
  });
});

describe('signing settings', () => {
  it('defaults to HS256 with 30-day rotation and no issuer or audience of its own', () => {
    expect(loadAppConfig(env())).toMatchObject({ jwtAlgorithm: 'HS256', signingKeyRotationDays: 30, jwtIssuer: undefined, jwtAudience: undefined });
  });

  it('reads JWT_ALGORITHM, JWT_ISSUER, JWT_AUDIENCE and SIGNING_KEY_ROTATION_DAYS', () => {
    const sut = loadAppConfig(env({ JWT_ALGORITHM: 'EdDSA', JWT_ISSUER: 'https://auth.example.com', JWT_AUDIENCE: 'api', SIGNING_KEY_ROTATION_DAYS: '7' }));
    expect(sut).toMatchObject({ jwtAlgorithm: 'EdDSA', jwtIssuer: 'https://auth.example.com', jwtAudience: 'api', signingKeyRotationDays: 7 });
  });

  it.each([['RS256'], ['none'], ['hs256']])('refuses JWT_ALGORITHM=%s', (value) => {
    expect(configErrorOf({ JWT_ALGORITHM: value }).message).toBe(`JWT_ALGORITHM must be HS256, EdDSA or ES256, got "${value}"`);
  });

  it('refuses a rotation of 0 days', () => {
    expect(configErrorOf({ SIGNING_KEY_ROTATION_DAYS: '0' }).message).toMatch(/^SIGNING_KEY_ROTATION_DAYS must be an integer from 1 to 365/);
  });
});

describe('audit settings', () => {
  it('keeps events 365 days by default', () => {
    expect(loadAppConfig(env()).auditRetentionDays).toBe(365);
  });

  it('reads AUDIT_RETENTION_DAYS', () => {
    expect(loadAppConfig(env({ AUDIT_RETENTION_DAYS: '30' })).auditRetentionDays).toBe(30);
  });

  it.each([['0'], ['-1'], ['ten']])('refuses AUDIT_RETENTION_DAYS=%s', (value) => {
    expect(configErrorOf({ AUDIT_RETENTION_DAYS: value }).message).toMatch(/^AUDIT_RETENTION_DAYS must be an integer from 1 to 3650/);
  });
});
