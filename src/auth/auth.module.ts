import { Module } from '@nestjs/common';
import { JwtService } from '@nestjs/jwt';
import { TypeOrmModule } from '@nestjs/typeorm';
import { MAILER_OPTIONS, MailerOptions, MailerService } from '@nestjs-modules/mailer';
import { TransactionRunner } from '../common/transaction-runner';
import { EmlFileTransport } from '../mail/eml-file.transport';
import { MailOutbox } from '../mail/mail-outbox.service';
import { MailService } from '../mail/mail.service';
import { OutboxMessage } from '../mail/outbox-message.entity';
import { MAIL_SEND_TIMEOUT_MS, OutboxWorker } from '../mail/outbox.worker';
import { RefreshToken } from '../sessions/refresh-token.entity';
import { Session } from '../sessions/session.entity';
import { SessionsService } from '../sessions/sessions.service';
import { User } from '../users/user.entity';
import { UserChanges } from '../users/user-changes';
import { UsersService } from '../users/users.service';
import { AccessUserCache } from './access-user-cache';
import { AccessTokenService } from './access-token.service';
import { AUTH_CONFIG, AuthConfig, resolveAuthConfig } from './auth-config';
import type { AuthModuleOptions } from './auth-options.interface';
import { authThrottlerProviders, AuthThrottlerGuard } from './auth-throttler.guard';
import { AuthController } from './auth.controller';
import { AUTH_MODULE_OPTIONS, AuthConfigurableModule } from './auth.module-definition';
import { AuthService } from './auth.service';
import { EmailVerificationToken } from './email-verification-token.entity';
import { EmailVerificationTokensService } from './email-verification-tokens.service';
import { Housekeeping } from './housekeeping';
import { JwtAuthGuard } from './jwt-auth.guard';
import { JwtStrategy } from './jwt.strategy';
import { PasswordHasher } from './password-hasher';
import { PasswordPolicy } from './password-policy';
import { PasswordResetToken } from './password-reset-token.entity';
import { PasswordResetTokensService } from './password-reset-tokens.service';
import { RedisConnection } from './redis-connection';
import { RefreshTokenCookie } from './refresh-token-cookie';
import { MailRequestLimiter, SigninFailureLimiter } from './signin-failures';

/** Every entity the module needs the host's DataSource to know (and its migrations to create). */
export const AUTH_ENTITIES = [User, PasswordResetToken, EmailVerificationToken, OutboxMessage, Session, RefreshToken];

/**
 * Sign-up, sign-in, password recovery and change under `/api/v1/auth`, plus `JwtAuthGuard` and
 * `@CurrentUser()` for the host's own routes. The host owns `TypeOrmModule.forRoot` (with `AUTH_ENTITIES`
 * and `AUTH_MIGRATIONS`); this module only registers its repositories.
 *
 * JWT signing and the mailer are provided here directly rather than through `JwtModule` and
 * `MailerModule`, whose async factories could not see this module's options, and so that they never
 * collide with a JWT or mail setup of the host.
 */
@Module({
  imports: [TypeOrmModule.forFeature(AUTH_ENTITIES)],
  controllers: [AuthController],
  providers: [
    {
      provide: AUTH_CONFIG,
      inject: [AUTH_MODULE_OPTIONS],
      useFactory: (options: AuthModuleOptions) => resolveAuthConfig(options),
    },
    {
      provide: JwtService,
      inject: [AUTH_CONFIG],
      useFactory: (config: AuthConfig) => new JwtService({ secret: config.jwtKey as unknown as string }),
    },
    {
      provide: MAILER_OPTIONS,
      inject: [AUTH_CONFIG],
      useFactory: ({ mail }: AuthConfig): MailerOptions => ({
        // A hung SMTP server must not hold a send (and its claim on the message) for nodemailer's default
        // minutes: the socket gives up first, and the mailer's own timeout backs it up.
        transport: mail.smtpUrl
          ? { url: mail.smtpUrl, connectionTimeout: 10_000, greetingTimeout: 10_000, socketTimeout: 20_000 }
          : new EmlFileTransport(mail.outputDir),
        sendTimeout: MAIL_SEND_TIMEOUT_MS,
      }),
    },
    MailerService,
    TransactionRunner,
    MailService,
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
    SigninFailureLimiter,
    MailRequestLimiter,
    JwtStrategy,
    JwtAuthGuard,
    RefreshTokenCookie,
    AuthService,
  ],
  exports: [AuthService, UsersService, SessionsService, JwtAuthGuard, AUTH_CONFIG, RedisConnection],
})
export class AuthModule extends AuthConfigurableModule {}
