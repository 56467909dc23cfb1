import { createSecretKey, KeyObject } from 'node:crypto';
import { availableParallelism } from 'node:os';
import type { AuthModuleOptions } from './auth-options.interface';

/** The module's options with every default applied and every bound checked, built once at start-up. */
export interface AuthConfig {
  jwtKey: KeyObject;
  jwtIssuer: string;
  jwtAudience: string;
  accessTokenTtlSeconds: number;
  passwordResetTokenTtlSeconds: number;
  passwordResetUrl: URL;
  appName: string;
  mail: { from: string; smtpUrl?: string; outputDir: string };
  rateLimit: {
    perAddressPerMinute: number;
    signinMaxFailures: number;
    signinFailureWindowSeconds: number;
    redisUrl?: string;
  };
  passwordHashing: { memoryCost: number; timeCost: number; parallelism: number; maxConcurrent: number; maxQueued: number };
  userCacheTtlSeconds: number;
  clock: () => Date;
}

export const AUTH_CONFIG = Symbol('AUTH_CONFIG');

export const MIN_JWT_SECRET_BYTES = 32;
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

export function resolveAuthConfig(options: AuthModuleOptions): AuthConfig {
  const rateLimit = options.rateLimit ?? {};
  const hashing = {
    ...ARGON2_MIN,
    maxConcurrent: availableParallelism(),
    maxQueued: 64,
    ...withoutUndefined(options.passwordHashing ?? {}),
  };
  for (const [name, min] of Object.entries({ ...ARGON2_MIN, maxConcurrent: 1, maxQueued: 0 })) {
    positiveInteger(`passwordHashing.${name}`, hashing[name as keyof typeof hashing], min);
  }
  const passwordResetUrl = URL.parse(options.passwordResetUrl);
  // Anything but http(s) in a mailed link (javascript:, data:) is an attack on the reader.
  if (!passwordResetUrl || !['http:', 'https:'].includes(passwordResetUrl.protocol)) {
    throw new Error(`AuthModule: passwordResetUrl must be an absolute http(s) URL: ${options.passwordResetUrl}`);
  }
  return {
    jwtKey: toKeyObject(options.jwtSecret),
    jwtIssuer: options.jwtIssuer ?? 'auth-service',
    jwtAudience: options.jwtAudience ?? 'auth-service',
    accessTokenTtlSeconds: positiveInteger('accessTokenTtlSeconds', options.accessTokenTtlSeconds ?? 1800),
    passwordResetTokenTtlSeconds: positiveInteger(
      'passwordResetTokenTtlSeconds',
      options.passwordResetTokenTtlSeconds ?? 1800,
    ),
    passwordResetUrl,
    appName: options.appName ?? 'Auth Service',
    mail: {
      from: options.mail?.from ?? 'no-reply@localhost',
      smtpUrl: options.mail?.smtpUrl,
      outputDir: options.mail?.outputDir ?? './data/mail',
    },
    rateLimit: {
      perAddressPerMinute: positiveInteger('rateLimit.perAddressPerMinute', rateLimit.perAddressPerMinute ?? 60, 0),
      signinMaxFailures: positiveInteger('rateLimit.signinMaxFailures', rateLimit.signinMaxFailures ?? 10),
      signinFailureWindowSeconds: positiveInteger(
        'rateLimit.signinFailureWindowSeconds',
        rateLimit.signinFailureWindowSeconds ?? 900,
      ),
      redisUrl: rateLimit.redisUrl,
    },
    passwordHashing: hashing,
    userCacheTtlSeconds: positiveInteger('userCacheTtlSeconds', options.userCacheTtlSeconds ?? 5, 0),
    clock: options.clock ?? (() => new Date()),
  };
}
