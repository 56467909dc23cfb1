import { MiddlewareConsumer, Module, NestModule } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { TransactionRunner } from '../common/transaction-runner';
import { MailOutbox } from '../outbox/mail-outbox.service';
import { MailService } from '../emails/mail.service';
import { OutboxMessage } from '../outbox/outbox-message.entity';
import { MAIL_COMPOSER } from '../outbox/mail-composer';
import { MailSender } from '../outbox/mail-sender';
import { OutboxWorker } from '../outbox/outbox.worker';
import { RefreshToken } from '../sessions/refresh-token.entity';
import { Session } from '../sessions/session.entity';
import { SessionsService } from '../sessions/sessions.service';
import { User } from '../users/user.entity';
import { UserChanges } from '../users/user-changes';
import { UsersService } from '../users/users.service';
import { AccessUserCache } from '../auth/access-user-cache';
import { AccessTokenService } from '../auth/access-token.service';
import { AUTH_CONFIG, resolveAuthConfig } from '../options/auth-config';
import type { AuthModuleOptions } from '../options/auth-options.interface';
import { authThrottlerProviders, AuthThrottlerGuard } from '../rate-limits/auth-throttler.guard';
import { AuthController } from '../auth/auth.controller';
import { AuthRoutes } from '../auth/auth-routes';
import { BodyLimitMiddleware, ParserErrorBoundary } from '../auth/route-boundary';
import { AUTH_MODULE_OPTIONS, AuthConfigurableModule } from './auth.module-definition';
import { AuthService } from '../auth/auth.service';
import { EmailVerificationToken } from '../one-time-tokens/email-verification-token.entity';
import { EmailVerificationTokensService } from '../one-time-tokens/email-verification-tokens.service';
import { Housekeeping } from './housekeeping';
import { JwtAuthGuard } from '../auth/jwt-auth.guard';
import { BearerAuthenticator } from '../auth/bearer-authenticator';
import { SigningKey } from '../signing-keys/signing-key.entity';
import { SigningKeys } from '../signing-keys/signing-keys.service';
import { MfaChallenge, RecoveryCode, TotpFactor } from '../mfa/mfa.entities';
import { MfaService } from '../mfa/mfa.service';
import { PasswordHasher } from '../passwords/password-hasher';
import { PasswordPolicy } from '../passwords/password-policy';
import { PasswordResetToken } from '../one-time-tokens/password-reset-token.entity';
import { PasswordResetTokensService } from '../one-time-tokens/password-reset-tokens.service';
import { RedisConnection } from '../common/redis-connection';
import { RefreshTokenCookie } from '../auth/refresh-token-cookie';
import { MailRequestLimiter, SigninFailureLimiter } from '../rate-limits/signin-failures';
import { KnownAddresses } from '../rate-limits/known-addresses';
import { AuthEvent } from '../audit/auth-event.entity';
import { AuditService } from '../audit/audit.service';
import { AdminController } from '../auth/admin.controller';
import { AdminService } from '../auth/admin.service';
import { Identity, OidcExchangeCode, OidcState } from '../oidc/oidc.entities';
import { OidcProviders } from '../oidc/oidc-providers';
import { OidcFlow } from '../oidc/oidc-flow.service';
import { OidcExchange } from '../oidc/oidc-exchange.service';
import { OidcAccounts } from '../oidc/oidc-accounts';
import { OidcCookies } from '../oidc/oidc-cookies';
import { IdentitiesService } from '../oidc/identities.service';
import { OidcController } from '../oidc/oidc.controller';
import { ACCOUNT_IDENTITIES, AccountService } from '../account/account.service';
import { EmailChangeToken } from '../one-time-tokens/email-change-token.entity';
import { EmailChangeTokensService } from '../one-time-tokens/email-change-tokens.service';
import { AuthMetrics } from '../metrics/auth-metrics';

/** Every entity the module needs the host's DataSource to know (and its migrations to create). */
export const AUTH_ENTITIES = [
  User,
  PasswordResetToken,
  EmailVerificationToken,
  OutboxMessage,
  Session,
  RefreshToken,
  SigningKey,
  TotpFactor,
  RecoveryCode,
  MfaChallenge,
  AuthEvent,
  Identity,
  OidcState,
  OidcExchangeCode,
  EmailChangeToken,
];

/**
 * Sign-up, sign-in, password recovery and change under `/api/v1/auth`, plus `JwtAuthGuard` and
 * `@CurrentUser()` for the host's own routes. The host owns `TypeOrmModule.forRoot` (with `AUTH_ENTITIES`
 * and `AUTH_MIGRATIONS`); this module only registers its repositories.
 *
 * Tokens are signed and checked by the module's own code (src/signing-keys), so it never collides with a
 * JWT or Passport setup of the host.
 */
@Module({
  imports: [TypeOrmModule.forFeature(AUTH_ENTITIES)],
  controllers: [AuthController, AdminController],
  providers: [
    {
      provide: AUTH_CONFIG,
      inject: [AUTH_MODULE_OPTIONS],
      useFactory: (options: AuthModuleOptions) => resolveAuthConfig(options),
    },
    TransactionRunner,
    AuthMetrics,
    MailService,
    { provide: MAIL_COMPOSER, useExisting: MailService },
    MailSender,
    MailOutbox,
    OutboxWorker,
    RedisConnection,
    ...authThrottlerProviders,
    AuthThrottlerGuard,
    UsersService,
    UserChanges,
    SessionsService,
    Housekeeping,
    AccessUserCache,
    PasswordHasher,
    PasswordPolicy,
    AccessTokenService,
    PasswordResetTokensService,
    EmailVerificationTokensService,
    KnownAddresses,
    SigninFailureLimiter,
    MailRequestLimiter,
    SigningKeys,
    BearerAuthenticator,
    MfaService,
    JwtAuthGuard,
    RefreshTokenCookie,
    AuthRoutes,
    ParserErrorBoundary,
    AuthService,
    AuditService,
    AdminService,
    OidcProviders,
    OidcCookies,
    OidcAccounts,
    OidcFlow,
    OidcExchange,
    IdentitiesService,
    EmailChangeTokensService,
    AccountService,
    { provide: ACCOUNT_IDENTITIES, useExisting: IdentitiesService },
  ],
  exports: [AuthService, AccountService, UsersService, AuditService, AdminService, SessionsService, JwtAuthGuard, BearerAuthenticator, SigningKeys, AUTH_CONFIG, RedisConnection],
})
export class AuthModule extends AuthConfigurableModule implements NestModule {
  configure(consumer: MiddlewareConsumer): void {
    consumer.apply(BodyLimitMiddleware).forRoutes(AuthController, AdminController, OidcController);
  }
}
