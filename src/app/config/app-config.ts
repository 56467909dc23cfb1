import { randomBytes } from 'node:crypto';
import { BlockList, isIP } from 'node:net';
import { DEFAULT_HASH_CONCURRENCY, MIN_JWT_SECRET_BYTES } from '../..';
import { DatabaseTarget, DEFAULT_DATABASE_URL, parseDatabaseUrl } from './database-url';
import { OidcEnvError, oidcFromEnv } from './oidc-env';
import type { OidcOptions } from '../..';

/** Settings of the standalone app, read from the environment once at boot. */
export interface AppConfig {
  production: boolean;
  port: number;
  /** HTTP adapter of the standalone app. */
  httpAdapter: 'fastify' | 'express';
  database: DatabaseTarget;
  redisUrl?: string;
  jwtSecret: string;
  /** True when no JWT_SECRET was given and a random one was made for this process. */
  jwtSecretGenerated: boolean;
  jwtAlgorithm: 'HS256' | 'EdDSA' | 'ES256';
  jwtIssuer?: string;
  jwtAudience?: string;
  signingKeyRotationDays: number;
  accessTokenExpireMinutes: number;
  refreshTokenExpireDays: number;
  refreshTokenReuseGraceSeconds: number;
  refreshTokenCookie: boolean;
  passwordResetTokenExpireMinutes: number;
  passwordResetUrl: string;
  emailVerificationUrl: string;
  emailVerificationTokenExpireHours: number;
  emailChangeUrl: string;
  requireVerifiedEmail: boolean;
  smtpUrl?: string;
  mailFrom: string;
  mailMaxAttempts: number;
  appName: string;
  rateLimitPerMinute: number;
  signinMaxFailures: number;
  signinFailureWindowMinutes: number;
  userCacheTtlSeconds: number;
  passwordHashConcurrency: number;
  passwordHashQueue: number;
  /** Browser origins allowed to call the API (CORS); empty: no cross-origin access. */
  corsOrigins: string[];
  passwordResetMailsPerHour: number;
  verificationMailsPerHour: number;
  mailRequestsPerAccountPerHour: number;
  auditRetentionDays: number;
  /** Express/Fastify `trust proxy`: false, a hop count, or a list of addresses and CIDRs. */
  trustProxy: false | number | string[];
  /** OpenID Connect providers (`OIDC_PROVIDERS`, …, `PUBLIC_URL`); undefined when none is listed. */
  oidc?: OidcOptions;
  /** Lowest level written; `silent` writes nothing. */
  logLevel: LogLevelName;
  /** `json`: one JSON object a line (pino); `pretty`: coloured lines for a terminal (pino-pretty). */
  logFormat: 'json' | 'pretty';
  /** Serve Prometheus metrics at GET /metrics. */
  metricsEnabled: boolean;
  /** Serve /metrics on this port alone instead of the app's port. */
  metricsPort?: number;
}

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevelName = (typeof LOG_LEVELS)[number];

/** A bad setting; the message is the one line printed before the process exits. */
export class ConfigError extends Error {}

type Env = Record<string, string | undefined>;

function read(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value === '' ? undefined : value;
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = read(env, name);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value < min || value > max) {
    throw new ConfigError(`${name} must be an integer from ${min} to ${max}, got "${raw}"`);
  }
  return value;
}

function boolean(env: Env, name: string, fallback: boolean): boolean {
  const raw = read(env, name);
  if (raw === undefined) return fallback;
  if (raw !== 'true' && raw !== 'false') throw new ConfigError(`${name} must be true or false, got "${raw}"`);
  return raw === 'true';
}

function url(env: Env, name: string, fallback: string | undefined, protocols: string[]): string | undefined {
  const raw = read(env, name) ?? fallback;
  if (raw === undefined) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new ConfigError(`${name} must be a URL, got "${raw}"`);
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(`${name} must use ${protocols.join(' or ')}, got "${parsed.protocol}"`);
  }
  return raw;
}

/** What proxy-addr (Express and Fastify's trust list) accepts: a named range, an address, or a CIDR. */
function isProxyAddress(entry: string): boolean {
  if (['loopback', 'linklocal', 'uniquelocal'].includes(entry)) return true;
  const [address, prefix, ...rest] = entry.split('/');
  const version = isIP(address);
  if (version === 0 || rest.length > 0) return false;
  if (prefix === undefined) return true;
  return /^\d{1,3}$/.test(prefix) && Number(prefix) <= (version === 4 ? 32 : 128);
}

/**
 * Hops beyond the real proxies are entries the client wrote itself; no deployment has more than a few
 * proxies (CDN, load balancer, ingress), so a larger count is a mistake that trusts everyone.
 */
const MAX_PROXY_HOPS = 5;

/**
 * Every client inside a trusted range can choose its own address with X-Forwarded-For, so a range must
 * name proxies, not the internet: `0.0.0.0/0` or `::/0` is `true` in disguise. The widest ranges proxies
 * are published in (CDNs: IPv4 /13, IPv6 /29) and private networks (`10.0.0.0/8`) fit; so does any
 * range inside IPv6's private `fc00::/7` (`fd00::/8`).
 */
const MIN_PREFIX: Record<4 | 6, number> = { 4: 8, 6: 16 };
const IPV6_PRIVATE = new BlockList();
IPV6_PRIVATE.addSubnet('fc00::', 7, 'ipv6');

/** `::ffff:a.b.c.d`, which proxy-addr treats as the IPv4 address with 96 bits less of prefix. */
function isIPv4Mapped(address: string): boolean {
  return /^\[::ffff:[0-9a-f]{1,4}:[0-9a-f]{1,4}\]$/.test(new URL(`http://[${address}]`).hostname);
}

function isTooWide(entry: string): boolean {
  const [address, prefix] = entry.split('/');
  if (prefix === undefined) return false;
  const version = isIP(address) as 4 | 6;
  if (version === 6 && isIPv4Mapped(address)) return Number(prefix) - 96 < MIN_PREFIX[4];
  if (version === 6 && Number(prefix) >= 7 && IPV6_PRIVATE.check(address, 'ipv6')) return false;
  return Number(prefix) < MIN_PREFIX[version];
}

function trustProxy(env: Env): AppConfig['trustProxy'] {
  const raw = read(env, 'TRUST_PROXY');
  if (raw === undefined) return false;
  if (/^\d+$/.test(raw)) {
    if (Number(raw) > MAX_PROXY_HOPS) {
      throw new ConfigError(`TRUST_PROXY hop count must be from 0 to ${MAX_PROXY_HOPS} (the proxies in front of the app), got "${raw}"`);
    }
    return Number(raw);
  }
  if (raw === 'true' || raw === '*') {
    // Trusting every hop lets any client choose its own address with X-Forwarded-For.
    throw new ConfigError('TRUST_PROXY must be a hop count or a list of proxy addresses, not "true"');
  }
  const entries = raw.split(',').map((entry) => entry.trim()).filter(Boolean);
  const bad = entries.find((entry) => !isProxyAddress(entry));
  if (bad !== undefined) throw new ConfigError(`TRUST_PROXY has an entry that is not an address or CIDR: "${bad}"`);
  const wide = entries.find(isTooWide);
  if (wide !== undefined) {
    throw new ConfigError(
      `TRUST_PROXY range "${wide}" is too wide: at least /${MIN_PREFIX[4]} for IPv4 and /${MIN_PREFIX[6]} for IPv6 ` +
        '(or loopback, linklocal, uniquelocal), since every client inside it could choose its own address',
    );
  }
  return entries;
}

function httpAdapter(env: Env): AppConfig['httpAdapter'] {
  const raw = read(env, 'HTTP_ADAPTER') ?? 'fastify';
  if (raw !== 'fastify' && raw !== 'express') throw new ConfigError(`HTTP_ADAPTER must be fastify or express, got "${raw}"`);
  return raw;
}

function jwtAlgorithm(env: Env): AppConfig['jwtAlgorithm'] {
  const raw = read(env, 'JWT_ALGORITHM') ?? 'HS256';
  if (raw !== 'HS256' && raw !== 'EdDSA' && raw !== 'ES256') {
    throw new ConfigError(`JWT_ALGORITHM must be HS256, EdDSA or ES256, got "${raw}"`);
  }
  return raw;
}

function corsOrigins(env: Env): string[] {
  const raw = read(env, 'CORS_ORIGINS');
  if (raw === undefined) return [];
  return raw.split(',').map((entry) => {
    const origin = entry.trim();
    const parsed = URL.parse(origin);
    // An origin is scheme://host[:port] and nothing more; a path or a wildcard would not match what browsers send.
    if (!parsed || !['http:', 'https:'].includes(parsed.protocol) || parsed.origin !== origin) {
      throw new ConfigError(`CORS_ORIGINS has an entry that is not an origin like https://app.example.com: "${origin}"`);
    }
    return origin;
  });
}

function oidc(env: Env): OidcOptions | undefined {
  try {
    return oidcFromEnv(env);
  } catch (error) {
    if (error instanceof OidcEnvError) throw new ConfigError(error.message);
    throw error;
  }
}

function oneOf<T extends string>(env: Env, name: string, values: readonly T[], fallback: T): T {
  const raw = read(env, name) ?? fallback;
  if (!values.includes(raw as T)) throw new ConfigError(`${name} must be one of ${values.join(', ')}, got "${raw}"`);
  return raw as T;
}

function metricsPort(env: Env, port: number): number | undefined {
  if (read(env, 'METRICS_PORT') === undefined) return undefined;
  const value = integer(env, 'METRICS_PORT', 0, 1, 65535);
  if (value === port) throw new ConfigError(`METRICS_PORT must differ from PORT (${port}); unset it to serve /metrics on PORT`);
  if (!boolean(env, 'METRICS_ENABLED', false)) throw new ConfigError('METRICS_PORT is set but METRICS_ENABLED is not true');
  return value;
}

/** Validates the environment; throws `ConfigError` naming the first bad variable. */
export function loadAppConfig(env: Env): AppConfig {
  // Case-insensitive: `NODE_ENV=Production` must not quietly run with a random secret.
  const nodeEnv = read(env, 'NODE_ENV')?.toLowerCase();
  const production = nodeEnv === 'production';

  let database: DatabaseTarget;
  const databaseUrl = read(env, 'DATABASE_URL') ?? DEFAULT_DATABASE_URL;
  try {
    database = parseDatabaseUrl(databaseUrl);
  } catch (error) {
    throw new ConfigError(`DATABASE_URL ${(error as Error).message}`);
  }

  let jwtSecret = read(env, 'JWT_SECRET');
  const jwtSecretGenerated = jwtSecret === undefined;
  if (jwtSecret !== undefined && Buffer.byteLength(jwtSecret) < MIN_JWT_SECRET_BYTES) {
    throw new ConfigError(`JWT_SECRET must be at least ${MIN_JWT_SECRET_BYTES} bytes (e.g. openssl rand -base64 48)`);
  }
  if (jwtSecret === undefined) {
    if (production) throw new ConfigError('JWT_SECRET is required when NODE_ENV=production');
    // A secret made up per process is a convenience for trying the service out; any other environment
    // (staging, a misspelt production) gets tokens that die with the process and differ per instance.
    if (nodeEnv !== undefined && !['development', 'test'].includes(nodeEnv)) {
      throw new ConfigError('JWT_SECRET is required unless NODE_ENV is unset, development or test');
    }
    jwtSecret = randomBytes(48).toString('base64');
  }

  const port = integer(env, 'PORT', 3000, 0, 65535);
  return {
    production,
    port,
    httpAdapter: httpAdapter(env),
    database,
    redisUrl: url(env, 'REDIS_URL', undefined, ['redis:', 'rediss:']),
    jwtSecret,
    jwtSecretGenerated,
    jwtAlgorithm: jwtAlgorithm(env),
    jwtIssuer: read(env, 'JWT_ISSUER'),
    jwtAudience: read(env, 'JWT_AUDIENCE'),
    signingKeyRotationDays: integer(env, 'SIGNING_KEY_ROTATION_DAYS', 30, 1, 365),
    accessTokenExpireMinutes: integer(env, 'ACCESS_TOKEN_EXPIRE_MINUTES', 30, 1, 24 * 60),
    refreshTokenExpireDays: integer(env, 'REFRESH_TOKEN_EXPIRE_DAYS', 30, 1, 365),
    refreshTokenReuseGraceSeconds: integer(env, 'REFRESH_TOKEN_REUSE_GRACE_SECONDS', 10, 0, 300),
    refreshTokenCookie: boolean(env, 'REFRESH_TOKEN_COOKIE', false),
    passwordResetTokenExpireMinutes: integer(env, 'PASSWORD_RESET_TOKEN_EXPIRE_MINUTES', 30, 1, 24 * 60),
    passwordResetUrl: url(env, 'PASSWORD_RESET_URL', 'http://localhost:3000/reset-password', ['http:', 'https:'])!,
    emailVerificationUrl: url(env, 'EMAIL_VERIFICATION_URL', 'http://localhost:3000/verify-email', ['http:', 'https:'])!,
    emailVerificationTokenExpireHours: integer(env, 'EMAIL_VERIFICATION_TOKEN_EXPIRE_HOURS', 24, 1, 7 * 24),
    emailChangeUrl: url(env, 'EMAIL_CHANGE_URL', 'http://localhost:3000/confirm-email', ['http:', 'https:'])!,
    requireVerifiedEmail: boolean(env, 'REQUIRE_VERIFIED_EMAIL', false),
    smtpUrl: url(env, 'SMTP_URL', undefined, ['smtp:', 'smtps:']),
    mailFrom: read(env, 'MAIL_FROM') ?? 'no-reply@localhost',
    mailMaxAttempts: integer(env, 'MAIL_MAX_ATTEMPTS', 10, 1, 100),
    appName: read(env, 'APP_NAME') ?? 'Auth Service',
    rateLimitPerMinute: integer(env, 'RATE_LIMIT_PER_MINUTE', 60, 0, 1_000_000),
    signinMaxFailures: integer(env, 'SIGNIN_MAX_FAILURES', 10, 1, 100),
    signinFailureWindowMinutes: integer(env, 'SIGNIN_FAILURE_WINDOW_MINUTES', 15, 1, 24 * 60),
    userCacheTtlSeconds: integer(env, 'USER_CACHE_TTL_SECONDS', 5, 0, 300),
    passwordHashConcurrency: integer(env, 'PASSWORD_HASH_CONCURRENCY', DEFAULT_HASH_CONCURRENCY, 1, 256),
    passwordHashQueue: integer(env, 'PASSWORD_HASH_QUEUE', 64, 0, 100_000),
    passwordResetMailsPerHour: integer(env, 'PASSWORD_RESET_MAILS_PER_HOUR', 3, 1, 100),
    verificationMailsPerHour: integer(env, 'VERIFICATION_MAILS_PER_HOUR', 3, 1, 100),
    mailRequestsPerAccountPerHour: integer(env, 'MAIL_REQUESTS_PER_ACCOUNT_PER_HOUR', 10, 1, 1000),
    auditRetentionDays: integer(env, 'AUDIT_RETENTION_DAYS', 365, 1, 10 * 365),
    trustProxy: trustProxy(env),
    corsOrigins: corsOrigins(env),
    oidc: oidc(env),
    logLevel: oneOf(env, 'LOG_LEVEL', LOG_LEVELS, 'info'),
    logFormat: oneOf(env, 'LOG_FORMAT', ['json', 'pretty'] as const, 'json'),
    metricsEnabled: boolean(env, 'METRICS_ENABLED', false),
    metricsPort: metricsPort(env, port),
  };
}
