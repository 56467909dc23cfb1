import type { KeyObject } from 'node:crypto';

/** Argon2id cost parameters. Defaults follow the OWASP Password Storage Cheat Sheet minimum. */
export interface PasswordHashingOptions {
  /** Memory in KiB. Default 19456 (19 MiB); values below it are refused. */
  memoryCost?: number;
  /** Iterations. Default 2; values below it are refused. */
  timeCost?: number;
  /** Lanes. Default 1. */
  parallelism?: number;
  /**
   * Hashes computed at once (each holds `memoryCost`). Default: two per CPU core, which measured better
   * than one per core on 2 cores (BENCHMARKS.md). Each runs on a libuv pool thread: start the process with
   * `UV_THREADPOOL_SIZE` of at least this plus two (libuv's default is 4), or a warning says so at start-up.
   */
  maxConcurrent?: number;
  /** Hashes allowed to wait for a slot; beyond that the request answers 503 at once. Default 64. */
  maxQueued?: number;
}

/** Limits against brute force. Counters live in Redis when `redisUrl` is set, in-process otherwise. */
export interface RateLimitOptions {
  /** Requests a minute per client address and route. `0` turns per-address limits off. Default 60. */
  perAddressPerMinute?: number;
  /**
   * Failed sign-ins per account within the window before sign-in answers 429. Past it, a network the
   * account signed in from before still gets through on half this budget, its own (README, "Rate limits
   * and the owner's way in"). Default 10.
   */
  signinMaxFailures?: number;
  /** Length of the failed sign-in window, in seconds. Default 900 (15 minutes). */
  signinFailureWindowSeconds?: number;
  /** `redis://…` URL of a store shared by every instance. Unset: each process counts on its own. */
  redisUrl?: string;
  /**
   * Password reset mails per account within an hour; further requests answer as usual and send nothing.
   * Counted in the database (the outbox), so every instance shares it. Default 3.
   */
  passwordResetMailsPerHour?: number;
  /** Mails carrying a verification link (welcome and resends) per account within an hour. Default 3. */
  verificationMailsPerHour?: number;
  /**
   * Requests an hour to forgot-password, and to resend-verification, for one email address from one
   * client network, known or not; beyond it the route answers 429 (the same for every email, so it
   * reveals no account). Per network, so that strangers cannot spend the owner's budget; the mail caps,
   * shared by every network, protect the mailbox. Default 10.
   */
  mailRequestsPerAccountPerHour?: number;
  /**
   * `POST /change-email` requests per account within an hour that send mail (the link to the new address
   * and the notice to the old one); past it the route answers as usual and sends nothing. Default 5.
   */
  emailChangeMailsPerHour?: number;
}

/** Where and how the module's emails go. */
export interface MailOptions {
  /** Sender address. Default `no-reply@localhost`. */
  from?: string;
  /**
   * `smtp://user:pass@host:port` (or `smtps://`). Unset: each message is written as an `.eml` file in
   * `outputDir`, which is what a developer wants on a laptop.
   */
  smtpUrl?: string;
  /** Folder for `.eml` files when no `smtpUrl` is given. Default `./data/mail`. */
  outputDir?: string;
  /** Delivery attempts per message before it is marked `dead` and left in the outbox for inspection. Default 10. */
  maxAttempts?: number;
  /** Wait before the first retry, in milliseconds; it doubles with each failure. Default 5000. */
  retryInitialDelayMs?: number;
  /** Longest wait between two attempts, in milliseconds. Default 300000 (5 minutes). */
  retryMaxDelayMs?: number;
  /**
   * How often the outbox worker looks for due messages, in milliseconds. A message written by this
   * instance is picked up at once; polling finds retries and messages of other instances. Default 1000.
   */
  pollIntervalMs?: number;
}

export interface SigningKeyOptions {
  /** A new key every this many days. Default 30. */
  rotationDays?: number;
  /**
   * How long a new key is published before it signs, in seconds. Default 600: longer than the JWKS
   * `max-age` (300 s), so a verifier caching the JWKS never meets a token before its key.
   */
  publishDelaySeconds?: number;
  /** How often each instance reloads the keys (rotations, revocations by another process), in seconds. Default 5. */
  refreshSeconds?: number;
}

/** One OpenID Connect provider, found through its discovery document (`<issuer>/.well-known/openid-configuration`). */
export interface OidcProviderOptions {
  /** Lower-case letters, digits and `_` (from 1 to 32): the `{name}` in `/oidc/{name}/…`, shown as the identity's provider. */
  name: string;
  /** The issuer identifier, exactly as the provider's ID tokens carry it. `http://` only on a loopback address. */
  issuer: string;
  clientId: string;
  clientSecret: string;
  /** Default `['openid', 'email', 'profile']`; `openid` is added when missing. */
  scopes?: string[];
}

/** Sign-in with OpenID Connect providers (SPEC.md, "Sign-in with an OpenID Connect provider"). */
export interface OidcOptions {
  providers: OidcProviderOptions[];
  /**
   * The service's own origin, optionally with a path, as the browser reaches it: the callback registered at
   * each provider is this followed by the callback route's path (`…/api/v1/auth/oidc/{name}/callback`).
   */
  publicUrl: string;
  /** Pages of the client app the browser may be sent back to, compared exactly. */
  redirectUrls: string[];
  /** Wait between two discovery attempts of a provider that could not be reached, in seconds. Default 30. */
  discoveryRetrySeconds?: number;
  /** Time allowed for each call to a provider (discovery, JWKS, token), in seconds. Default 5. */
  requestTimeoutSeconds?: number;
}

/**
 * What the module needs of a prom-client `Registry` (a `new Registry()` or prom-client's default
 * `register` fits as it is). Structural, so that the module's types do not require prom-client.
 */
export interface MetricsRegistry {
  registerMetric(metric: object): void;
  getSingleMetric(name: string): unknown;
}

/** Prometheus metrics of the module (sign-in and refresh outcomes, rate limits, hashing queue, outbox). */
export interface MetricsOptions {
  /**
   * The prom-client registry the module's metrics are registered in (names in `AUTH_METRIC_NAMES`).
   * Needs the `prom-client` package, an optional peer. Unset: the module counts nothing.
   */
  registry?: MetricsRegistry;
}

/** Options of `AuthModule.forRoot` / `forRootAsync`. The module reads no environment variable itself. */
export interface AuthModuleOptions {
  /**
   * At least 32 bytes: the HS256 key for access tokens, and with EdDSA or ES256 the secret the stored
   * private keys are encrypted under (changing it then needs the keys revoked). A `KeyObject`
   * (`crypto.createSecretKey`) or a string/Buffer, which is turned into one.
   */
  jwtSecret: string | Buffer | KeyObject;
  /**
   * How access tokens are signed. `HS256` (default) with `jwtSecret`; `EdDSA` (Ed25519) or `ES256`
   * (P-256) with key pairs kept in the database and published at `GET {routePrefix}/jwks`, so other
   * services can verify tokens without a secret that can also mint them.
   */
  jwtAlgorithm?: 'HS256' | 'EdDSA' | 'ES256';
  /** Rotation of the EdDSA / ES256 key pairs (ignored with HS256). */
  signingKeys?: SigningKeyOptions;
  /** `iss` claim written and required. Default `auth-service`. */
  jwtIssuer?: string;
  /** `aud` claim written and required. Default `auth-service`. */
  jwtAudience?: string;
  /** Access token lifetime in seconds. Default 1800 (30 minutes). */
  accessTokenTtlSeconds?: number;
  /**
   * How long a session lasts without being used, in seconds: each refresh starts the period again.
   * Default 2592000 (30 days).
   */
  refreshTokenTtlSeconds?: number;
  /**
   * A spent refresh token presented again within this many seconds gets the same successor again (two
   * tabs refreshing at once both stay signed in); later, it is taken for a stolen copy and its whole
   * session is revoked. Default 10.
   */
  refreshTokenReuseGraceSeconds?: number;
  /**
   * Send the refresh token in an HttpOnly, Secure, SameSite=Strict cookie scoped to `/api/v1/auth`
   * instead of the response body, and read it from there on refresh (for browser apps). Default false.
   */
  refreshTokenCookie?: boolean;
  /** Password reset token lifetime in seconds. Default 1800 (30 minutes). */
  passwordResetTokenTtlSeconds?: number;
  /** Page of the client app that takes `?token=…` and posts it to `/reset-password`. Never taken from a request. */
  passwordResetUrl: string;
  /**
   * Page of the client app that takes `?token=…` and posts it to `/verify-email`. Never taken from a
   * request. Default: `/verify-email` on the origin of `passwordResetUrl`.
   */
  emailVerificationUrl?: string;
  /** Email verification token lifetime in seconds. Default 86400 (24 hours). */
  emailVerificationTokenTtlSeconds?: number;
  /**
   * Page of the client app that takes `?token=…` and posts it to `/confirm-email-change`; the link goes
   * to the new address. Never taken from a request. Default: `/confirm-email` on the origin of `passwordResetUrl`.
   */
  emailChangeUrl?: string;
  /** Lifetime of the email change link, in seconds, from when it is mailed. Default 1800 (30 minutes). */
  emailChangeTokenTtlSeconds?: number;
  /** Refuse sign-in (403 `Email not verified`) until the account's email is verified. Default false. */
  requireVerifiedEmail?: boolean;
  /** Name used in email subjects and bodies. Default `Auth Service`. */
  appName?: string;
  mail?: MailOptions;
  rateLimit?: RateLimitOptions;
  passwordHashing?: PasswordHashingOptions;
  /**
   * How long the access check may reuse a user read from the database, in seconds. Changes made through
   * this module (password change or reset, `UsersService.setActive`, a session ended) take effect at
   * once on this instance, and on every instance when `rateLimit.redisUrl` is set; changes made directly
   * in the database take up to this long. `0` reads the user on every guarded request. Default 5.
   */
  userCacheTtlSeconds?: number;
  /** Days audit events are kept; the hourly housekeeping deletes older ones. Default 365. */
  auditRetentionDays?: number;
  /** Sign-in with OpenID Connect providers. Unset: no provider, and the OIDC routes answer 404 `Unknown provider`. */
  oidc?: OidcOptions;
  /** Source of the current time, for tests that move it. Default `() => new Date()`. */
  clock?: () => Date;
  /** Prometheus metrics into the host's registry. Default: none. */
  metrics?: MetricsOptions;
}
