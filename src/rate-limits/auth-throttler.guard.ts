import { ExecutionContext, Injectable, Provider } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import {
  getOptionsToken,
  getStorageToken,
  InjectThrottlerOptions,
  InjectThrottlerStorage,
  ThrottlerGuard,
  ThrottlerLimitDetail,
  ThrottlerModuleOptions,
  ThrottlerStorage,
  ThrottlerStorageService,
} from '@nestjs/throttler';
import { AUTH_CONFIG, AuthConfig } from '../options/auth-config';
import { RedisConnection } from '../common/redis-connection';
import { AuthErrors } from '../common/auth.errors';
import { TooManyRequestsException } from '../common/exceptions';
import { RedisThrottlerStorage } from './redis-throttler-storage';
import { AuthMetrics } from '../metrics/auth-metrics';

/**
 * Per client address and route limit on the auth routes. The address is `request.ip`, which Express and
 * Fastify take from `X-Forwarded-For` only for the proxies the app was told to trust, so a spoofed header
 * cannot pick its own bucket.
 */
@Injectable()
export class AuthThrottlerGuard extends ThrottlerGuard {
  /** IETF RateLimit header fields (draft-ietf-httpapi-ratelimit-headers) instead of the X- ones. */
  protected override headerPrefix = 'RateLimit';

  constructor(
    @InjectThrottlerOptions() options: ThrottlerModuleOptions,
    @InjectThrottlerStorage() storage: ThrottlerStorage,
    reflector: Reflector,
    private readonly metrics: AuthMetrics,
  ) {
    super(options, storage, reflector);
  }

  /**
   * The throttler sets its RateLimit fields only on requests it lets through; refused ones get them from
   * the problem details filter, as the per-account limits' 429s do, so every 429 says the same things.
   */
  protected override async throwThrottlingException(_context: ExecutionContext, detail: ThrottlerLimitDetail): Promise<void> {
    this.metrics.rateLimited('per_address');
    throw new TooManyRequestsException(AuthErrors.TOO_MANY_REQUESTS, detail.timeToBlockExpire, detail.limit);
  }
}

/**
 * The throttler's options and storage, provided inside AuthModule rather than through ThrottlerModule, so
 * they come from the auth options and never collide with a throttler the host app configures for itself.
 */
export const authThrottlerProviders: Provider[] = [
  {
    provide: getOptionsToken(),
    inject: [AUTH_CONFIG],
    useFactory: ({ rateLimit }: AuthConfig): ThrottlerModuleOptions => ({
      throttlers: [{ name: 'default', ttl: 60_000, limit: rateLimit.perAddressPerMinute }],
      skipIf: () => rateLimit.perAddressPerMinute === 0,
    }),
  },
  {
    provide: getStorageToken(),
    inject: [RedisConnection],
    useFactory: (connection: RedisConnection): ThrottlerStorage =>
      connection.configured ? new RedisThrottlerStorage(connection) : new ThrottlerStorageService(),
  },
];
