import { DynamicModule, Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { AuthModule, type AuthModuleOptions } from '..';
import type { AppConfig } from './config/app-config';
import { dataSourceOptions, runPendingMigrations } from './config/database';
import { HealthController } from './health/health.controller';
import { WellKnownController } from './well-known.controller';

/** Maps the validated environment to the module's options: the only place the two meet. */
export function authOptionsFrom(config: AppConfig): AuthModuleOptions {
  return {
    jwtSecret: config.jwtSecret,
    jwtAlgorithm: config.jwtAlgorithm,
    jwtIssuer: config.jwtIssuer,
    jwtAudience: config.jwtAudience,
    signingKeys: { rotationDays: config.signingKeyRotationDays },
    accessTokenTtlSeconds: config.accessTokenExpireMinutes * 60,
    refreshTokenTtlSeconds: config.refreshTokenExpireDays * 24 * 3600,
    refreshTokenReuseGraceSeconds: config.refreshTokenReuseGraceSeconds,
    refreshTokenCookie: config.refreshTokenCookie,
    passwordResetTokenTtlSeconds: config.passwordResetTokenExpireMinutes * 60,
    passwordResetUrl: config.passwordResetUrl,
    emailVerificationUrl: config.emailVerificationUrl,
    emailVerificationTokenTtlSeconds: config.emailVerificationTokenExpireHours * 3600,
    emailChangeUrl: config.emailChangeUrl,
    requireVerifiedEmail: config.requireVerifiedEmail,
    appName: config.appName,
    userCacheTtlSeconds: config.userCacheTtlSeconds,
    auditRetentionDays: config.auditRetentionDays,
    passwordHashing: { maxConcurrent: config.passwordHashConcurrency, maxQueued: config.passwordHashQueue },
    mail: { smtpUrl: config.smtpUrl, from: config.mailFrom, maxAttempts: config.mailMaxAttempts },
    rateLimit: {
      perAddressPerMinute: config.rateLimitPerMinute,
      signinMaxFailures: config.signinMaxFailures,
      signinFailureWindowSeconds: config.signinFailureWindowMinutes * 60,
      redisUrl: config.redisUrl,
      passwordResetMailsPerHour: config.passwordResetMailsPerHour,
      verificationMailsPerHour: config.verificationMailsPerHour,
      mailRequestsPerAccountPerHour: config.mailRequestsPerAccountPerHour,
    },
    oidc: config.oidc,
  };
}

/** The standalone service: the auth module on its own database, plus health checks. */
@Module({})
export class AppModule {
  /** `authOverrides` exists for tests (an injected clock, a mail folder); the app passes none. */
  static register(config: AppConfig, authOverrides: Partial<AuthModuleOptions> = {}): DynamicModule {
    return {
      module: AppModule,
      imports: [
        // Pending migrations run before the app listens, so a fresh machine needs no extra step.
        TypeOrmModule.forRootAsync({
          useFactory: async () => {
            await runPendingMigrations(config.database);
            return dataSourceOptions(config.database);
          },
        }),
        AuthModule.forRoot({ ...authOptionsFrom(config), ...authOverrides }),
      ],
      controllers: [HealthController, WellKnownController],
    };
  }
}
