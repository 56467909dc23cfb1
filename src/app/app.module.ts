import { DynamicModule, Injectable, Module, OnApplicationShutdown } from '@nestjs/common';
import type { DestinationStream } from 'pino';
import type { Registry } from 'prom-client';
import { TypeOrmModule } from '@nestjs/typeorm';
import { AuthModule, type AuthModuleOptions } from '..';
import type { AppConfig } from './config/app-config';
import { dataSourceOptions, runPendingMigrations } from './config/database';
import { HealthController } from './health/health.controller';
import { WellKnownController } from './well-known.controller';
import { flushLogs, loggingModule } from './logging';
import { MetricsModule } from './metrics';
import { stopTracing } from './tracing';

/** How the standalone server reports on itself; `createApp` decides from the config and its caller. */
export interface Observability {
  /** Log through pino (nestjs-pino), to this stream or stdout; false: the caller's Nest logger. */
  pinoLogs: false | { destination?: DestinationStream };
  /** The registry behind GET /metrics; unset: no metrics. */
  metricsRegistry?: Registry;
}

/** Buffered spans and log lines go out before the process ends. */
@Injectable()
class ObservabilityShutdown implements OnApplicationShutdown {
  async onApplicationShutdown(): Promise<void> {
    await stopTracing();
    flushLogs();
  }
}

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
  static register(
    config: AppConfig,
    authOverrides: Partial<AuthModuleOptions> = {},
    observability: Observability = { pinoLogs: false },
  ): DynamicModule {
    const registry = observability.metricsRegistry;
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
        AuthModule.forRoot({ ...authOptionsFrom(config), ...(registry ? { metrics: { registry } } : {}), ...authOverrides }),
        ...(observability.pinoLogs ? [loggingModule(config, observability.pinoLogs.destination)] : []),
        ...(registry ? [MetricsModule.register(config, registry)] : []),
      ],
      controllers: [HealthController, WellKnownController],
      providers: [ObservabilityShutdown],
    };
  }
}
