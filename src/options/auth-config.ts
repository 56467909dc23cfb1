import { createSecretKey, KeyObject } from 'node:crypto';
import { availableParallelism } from 'node:os';
import type { AuthModuleOptions, MetricsRegistry } from './auth-options.interface';
import { OidcConfig, resolveOidcConfig } from './oidc-config';

/** The module's options with every default applied and every bound checked, built once at start-up. */
export interface AuthConfig {
  jwtKey: KeyObject;
  jwtAlgorithm: JwtAlgorithmName;
  signingKeys: { rotationDays: number; publishDelaySeconds: number; refreshSeconds: number };
  jwtIssuer: string;
  jwtAudience: string;
  accessTokenTtlSeconds: number;
  refreshTokenTtlSeconds: number;
  refreshTokenReuseGraceSeconds: number;
  refreshTokenCookie: boolean;
  passwordResetTokenTtlSeconds: number;
  passwordResetUrl: URL;
  emailVerificationUrl: URL;
  emailVerificationTokenTtlSeconds: number;
  emailChangeUrl: URL;
  emailChangeTokenTtlSeconds: number;
  requireVerifiedEmail: boolean;
  appName: string;
  mail: {
    from: string;
    smtpUrl?: string;
    outputDir: string;
    maxAttempts: number;
    retryInitialDelayMs: number;
    retryMaxDelayMs: number;
    pollIntervalMs: number;
  };
  rateLimit: {
    perAddressPerMinute: number;
    signinMaxFailures: number;
    signinFailureWindowSeconds: number;
    redisUrl?: string;
    passwordResetMailsPerHour: number;
    verificationMailsPerHour: number;
    mailRequestsPerAccountPerHour: number;
    emailChangeMailsPerHour: number;
  };
  passwordHashing: { memoryCost: number; timeCost: number; parallelism: number; maxConcurrent: number; maxQueued: number };
  userCacheTtlSeconds: number;
  auditRetentionDays: number;
  /** Null when no OpenID Connect provider is configured. */
  oidc: OidcConfig | null;
  clock: () => Date;
  metrics: { registry?: MetricsRegistry };
}

export const AUTH_CONFIG = Symbol('AUTH_CONFIG');

export type JwtAlgorithmName = NonNullable<AuthModuleOptions['jwtAlgorithm']>;
const JWT_ALGORITHM_NAMES: JwtAlgorithmName[] = ['HS256', 'EdDSA', 'ES256'];

export const MIN_JWT_SECRET_BYTES = 32;
/**
 * Two hashes per core: measured on 2 cores, 4 in flight gave 0.88 of raw argon2 throughput against 0.80
 * with 2, and a lower p99 on cheap routes meanwhile (BENCHMARKS.md).
 */
export const DEFAULT_HASH_CONCURRENCY = 2 * availableParallelism();
const ARGON2_MIN = { memoryCost: 19456, timeCost: 2, parallelism: 1 };

function positiveInteger(name: string, value: number, min = 1): number {
  if (!Number.isInteger(value) || value < min) {
    throw new Error(`AuthModule: ${name} must be an integer >= ${min}, got ${value}`);
  }
  return value;
}

function withoutUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function toKeyObject(secret: AuthModuleOptions['jwtSecret']): KeyObject {
  const key = secret instanceof KeyObject ? secret : createSecretKey(Buffer.from(secret));
  if (key.type !== 'secret' || (key.symmetricKeySize ?? 0) < MIN_JWT_SECRET_BYTES) {
    // RFC 8725 3.5: an HMAC key must carry at least as many bits as the hash output.
    throw new Error(`AuthModule: jwtSecret must be a secret of at least ${MIN_JWT_SECRET_BYTES} bytes`);
  }
  return key;
}

function mailedLink(name: string, value: string): URL {
  const url = URL.parse(value);
  // Anything but http(s) in a mailed link (javascript:, data:) is an attack on the reader.
  if (!url || !['http:', 'https:'].includes(url.protocol)) {
    throw new Error(`AuthModule: ${name} must be an absolute http(s) URL: ${value}`);
  }
  return url;
}

function metricsRegistry(registry: MetricsRegistry | undefined): MetricsRegistry | undefined {
  if (registry === undefined) return undefined;
  if (typeof registry?.registerMetric !== 'function' || typeof registry.getSingleMetric !== 'function') {
    throw new Error('AuthModule: metrics.registry must be a prom-client Registry');
  }
  return registry;
}

export function resolveAuthConfig(options: AuthModuleOptions): AuthConfig {
  const rateLimit = options.rateLimit ?? {};
  const mail = options.mail ?? {};
  const hashing = {
    ...ARGON2_MIN,
    maxConcurrent: DEFAULT_HASH_CONCURRENCY,
    maxQueued: 64,
    ...withoutUndefined(options.passwordHashing ?? {}),
  };
  for (const [name, min] of Object.entries({ ...ARGON2_MIN, maxConcurrent: 1, maxQueued: 0 })) {
    positiveInteger(`passwordHashing.${name}`, hashing[name as keyof typeof hashing], min);
  }
  const passwordResetUrl = mailedLink('passwordResetUrl', options.passwordResetUrl);
  const emailVerificationUrl = mailedLink(
    'emailVerificationUrl',
    options.emailVerificationUrl ?? new URL('/verify-email', passwordResetUrl).toString(),
  );
  const retryInitialDelayMs = positiveInteger('mail.retryInitialDelayMs', mail.retryInitialDelayMs ?? 5000);
  const jwtAlgorithm = options.jwtAlgorithm ?? 'HS256';
  if (!JWT_ALGORITHM_NAMES.includes(jwtAlgorithm)) {
    throw new Error(`AuthModule: jwtAlgorithm must be one of ${JWT_ALGORITHM_NAMES.join(', ')}, got ${jwtAlgorithm}`);
  }
  const signingKeys = options.signingKeys ?? {};
  return {
    jwtKey: toKeyObject(options.jwtSecret),
    jwtAlgorithm,
    signingKeys: {
      rotationDays: positiveInteger('signingKeys.rotationDays', signingKeys.rotationDays ?? 30),
      publishDelaySeconds: positiveInteger('signingKeys.publishDelaySeconds', signingKeys.publishDelaySeconds ?? 600, 0),
      refreshSeconds: positiveInteger('signingKeys.refreshSeconds', signingKeys.refreshSeconds ?? 5),
    },
    jwtIssuer: options.jwtIssuer ?? 'auth-service',
    jwtAudience: options.jwtAudience ?? 'auth-service',
    accessTokenTtlSeconds: positiveInteger('accessTokenTtlSeconds', options.accessTokenTtlSeconds ?? 1800),
    refreshTokenTtlSeconds: positiveInteger('refreshTokenTtlSeconds', options.refreshTokenTtlSeconds ?? 30 * 24 * 3600),
    refreshTokenReuseGraceSeconds: positiveInteger(
      'refreshTokenReuseGraceSeconds',
      options.refreshTokenReuseGraceSeconds ?? 10,
      0,
    ),
    refreshTokenCookie: options.refreshTokenCookie ?? false,
    passwordResetTokenTtlSeconds: positiveInteger(
      'passwordResetTokenTtlSeconds',
      options.passwordResetTokenTtlSeconds ?? 1800,
    ),
    passwordResetUrl,
    emailVerificationUrl,
    emailVerificationTokenTtlSeconds: positiveInteger(
      'emailVerificationTokenTtlSeconds',
      options.emailVerificationTokenTtlSeconds ?? 24 * 3600,
    ),
    emailChangeUrl: mailedLink('emailChangeUrl', options.emailChangeUrl ?? new URL('/confirm-email', passwordResetUrl).toString()),
    emailChangeTokenTtlSeconds: positiveInteger('emailChangeTokenTtlSeconds', options.emailChangeTokenTtlSeconds ?? 1800),
    requireVerifiedEmail: options.requireVerifiedEmail ?? false,
    appName: options.appName ?? 'Auth Service',
    mail: {
      from: mail.from ?? 'no-reply@localhost',
      smtpUrl: mail.smtpUrl,
      outputDir: mail.outputDir ?? './data/mail',
      maxAttempts: positiveInteger('mail.maxAttempts', mail.maxAttempts ?? 10),
      retryInitialDelayMs,
      retryMaxDelayMs: positiveInteger('mail.retryMaxDelayMs', mail.retryMaxDelayMs ?? 300_000, retryInitialDelayMs),
      pollIntervalMs: positiveInteger('mail.pollIntervalMs', mail.pollIntervalMs ?? 1000),
    },
    rateLimit: {
      perAddressPerMinute: positiveInteger('rateLimit.perAddressPerMinute', rateLimit.perAddressPerMinute ?? 60, 0),
      signinMaxFailures: positiveInteger('rateLimit.signinMaxFailures', rateLimit.signinMaxFailures ?? 10),
      signinFailureWindowSeconds: positiveInteger(
        'rateLimit.signinFailureWindowSeconds',
        rateLimit.signinFailureWindowSeconds ?? 900,
      ),
      redisUrl: rateLimit.redisUrl,
      passwordResetMailsPerHour: positiveInteger(
        'rateLimit.passwordResetMailsPerHour',
        rateLimit.passwordResetMailsPerHour ?? 3,
      ),
      verificationMailsPerHour: positiveInteger('rateLimit.verificationMailsPerHour', rateLimit.verificationMailsPerHour ?? 3),
      mailRequestsPerAccountPerHour: positiveInteger(
        'rateLimit.mailRequestsPerAccountPerHour',
        rateLimit.mailRequestsPerAccountPerHour ?? 10,
      ),
      emailChangeMailsPerHour: positiveInteger('rateLimit.emailChangeMailsPerHour', rateLimit.emailChangeMailsPerHour ?? 5),
    },
    passwordHashing: hashing,
    userCacheTtlSeconds: positiveInteger('userCacheTtlSeconds', options.userCacheTtlSeconds ?? 5, 0),
    auditRetentionDays: positiveInteger('auditRetentionDays', options.auditRetentionDays ?? 365),
    oidc: resolveOidcConfig(options.oidc),
    clock: options.clock ?? (() => new Date()),
    metrics: { registry: metricsRegistry(options.metrics?.registry) },
  };
}
