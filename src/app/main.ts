import 'reflect-metadata';
import { existsSync } from 'node:fs';
import type * as NestCommon from '@nestjs/common';
import type * as AppSetup from './app.setup';
import type * as Tracing from './tracing';
import { lowerThreadPoolPriority, SigningKeyDecryptionError } from '..';
import { AppConfig, ConfigError, loadAppConfig } from './config/app-config';

async function bootstrap(): Promise<void> {
  if (existsSync('.env')) process.loadEnvFile('.env');
  let config: AppConfig;
  try {
    config = loadAppConfig(process.env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    // One line naming the variable, and no half-configured start.
    console.error(`Configuration error: ${error.message}`);
    process.exit(1);
  }
  // Every hash gets a pool thread, with two to spare for file and DNS work; libuv reads this once, when
  // the pool starts, which is the next line.
  process.env.UV_THREADPOOL_SIZE ??= String(config.passwordHashConcurrency + 2);
  const loweredThreads = await lowerThreadPoolPriority();
  // Before the app and its drivers load, which the instrumentations patch as they are required.
  const tracing = (require('./tracing') as typeof Tracing).startTracing(process.env);
  // The app and its drivers load only now, once the pool is sized (loading the library starts no pool thread).
  // (require, not import(): Node 20's ESM loader trips over Nest's ESM-only packages behind a dynamic import.)
  const { Logger } = require('@nestjs/common') as typeof NestCommon;
  const { createApp } = require('./app.setup') as typeof AppSetup;
  const app = await createApp(config);
  // Logged once the app's logger is in place, so these lines are JSON like every other.
  const logger = new Logger('Bootstrap');
  if (config.jwtSecretGenerated) {
    logger.warn('JWT_SECRET is not set: using a random secret for this process; tokens end when it stops');
  }
  if (config.production && !config.smtpUrl) {
    logger.warn('SMTP_URL is not set with NODE_ENV=production: mail is written as .eml files under ./data/mail and never delivered');
  }
  if (loweredThreads === 0) logger.warn('could not lower the thread pool priority: hashing may slow cheap routes');
  // The origin only: credentials in the URL (https://user:key@…) stay out of the log.
  if (tracing) logger.log(`tracing to ${URL.parse(process.env.OTEL_EXPORTER_OTLP_ENDPOINT ?? '')?.origin ?? 'the OTLP endpoint'}`);
  try {
    await app.listen(config.port, '0.0.0.0');
  } catch (error) {
    if (!(error instanceof SigningKeyDecryptionError)) throw error;
    // One line, and no start: every token it signed or checked would fail.
    console.error(`Configuration error: ${error.message}`);
    process.exit(1);
  }
  logger.log(`listening on port ${config.port} (${config.database.type}${config.redisUrl ? ', redis' : ''}); docs at /docs`);
}

void bootstrap();
