/** Public API of the auth module. */
export { AuthModule, AUTH_ENTITIES } from './module/auth.module';
export { AUTH_MODULE_OPTIONS } from './module/auth.module-definition';
export type { AuthModuleExtras } from './module/auth.module-definition';
export { setAuthTablePrefix } from './options/table-prefix';
export { BODY_LIMIT_BYTES, fastifyFrameworkErrors } from './auth/route-boundary';
export type {
  OidcOptions,
  OidcProviderOptions,
  AuthModuleOptions,
  MailOptions,
  MetricsOptions,
  MetricsRegistry,
  PasswordHashingOptions,
  RateLimitOptions,
  SigningKeyOptions,
} from './options/auth-options.interface';
export { AuthService } from './auth/auth.service';
export { AdminService } from './auth/admin.service';
export { AccountService } from './account/account.service';
export { AuthErrors, AuthMessages } from './common/auth.errors';
export { JwtAuthGuard } from './auth/jwt-auth.guard';
export { CurrentSessionId, CurrentUser, Public, RequireAal, Roles } from './auth/decorators';
export { UsersService } from './users/users.service';
export { AuditService, AUTH_EVENT_TYPES } from './audit/audit.service';
export type { AuthEventType, EventFilter, EventPage } from './audit/audit.service';
export { AuthEvent } from './audit/auth-event.entity';
export { User } from './users/user.entity';
export { PasswordResetToken } from './one-time-tokens/password-reset-token.entity';
export { EmailVerificationToken } from './one-time-tokens/email-verification-token.entity';
export { OutboxMessage } from './outbox/outbox-message.entity';
export { Session } from './sessions/session.entity';
export { RefreshToken } from './sessions/refresh-token.entity';
export { SessionsService } from './sessions/sessions.service';
export { SigningKeyDecryptionError, SigningKeys } from './signing-keys/signing-keys.service';
export type { PublicJwk } from './signing-keys/signing-keys.service';
export { SigningKey } from './signing-keys/signing-key.entity';
export type { OutboxMessageKind, OutboxMessageStatus } from './outbox/outbox-message.entity';
export { AUTH_MIGRATIONS } from './migrations';
export { ProblemDetailsFilter } from './common/problem-details.filter';
export { RedisConnection } from './common/redis-connection';
export { DEFAULT_HASH_CONCURRENCY, MIN_JWT_SECRET_BYTES } from './options/auth-config';
export { lowerThreadPoolPriority } from './common/thread-pool-priority';
export { TokenResponse, UserResponse, SuccessResponse, SessionResponse, JwksResponse } from './auth/dto/responses.dto';
export { AUTH_METRIC_NAMES } from './metrics/auth-metrics';
export type { RateLimiter, RefreshOutcome, SigninOutcome, SigninStep } from './metrics/auth-metrics';
export { requestIdOf } from './common/request-id';
