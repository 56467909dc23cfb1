import { INestApplication, LoggerService } from '@nestjs/common';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import request from 'supertest';
import type TestAgent from 'supertest/lib/agent';
import { DataSource } from 'typeorm';
import { authOptionsFrom } from '../../src/app/app.module';
import { createApp, HttpAdapterKind } from '../../src/app/app.setup';
import { AuthService } from '../../src/auth/auth.service';
import type { AuthModuleOptions, MailOptions } from '../../src/options/auth-options.interface';
import { loadAppConfig } from '../../src/app/config/app-config';
import { OutboxMessage } from '../../src/outbox/outbox-message.entity';
import { createTestDatabase, DatabaseKind, TestDatabase } from './databases';
import { TestSmtpServer } from './smtp';

export const TEST_JWT_SECRET = 'test-secret-that-is-at-least-32-bytes-long!';
export const RESET_URL = 'https://app.example.test/reset-password';

/** Every log line of a test app, so tests can assert what was (and was not) logged. */
export class CapturingLogger implements LoggerService {
  readonly lines: string[] = [];
  log(message: unknown, ...rest: unknown[]): void {
    this.lines.push([message, ...rest].map(String).join(' '));
  }
  error = this.log;
  warn = this.log;
  debug = this.log;
  verbose = this.log;
  fatal = this.log;
}

/**
 * What pino wrote, for apps started with `pinoLogs`. One sink for the whole suite file: nestjs-pino
 * keeps one pino instance per process (per suite under Jest), the first app's, whatever later apps ask.
 */
const pinoOutput: string[] = [];
const pinoSink = {
  write(chunk: string): void {
    for (const line of chunk.split('\n')) if (line !== '') pinoOutput.push(line);
  },
};

export interface TestApp {
  app: INestApplication;
  http: () => TestAgent;
  logs: CapturingLogger;
  /** With `pinoLogs`: the JSON lines written since this app started (the apps of a suite run one after another). */
  pinoLines(): string[];
  /** Moves the module's clock forward (reset token expiry, sign-in failure windows). */
  advanceClock(ms: number): void;
  /** Waits until no message in the outbox is pending: each was sent or went dead. */
  drainMail(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export interface TestAppOptions {
  adapter: HttpAdapterKind;
  databaseUrl: string;
  smtpUrl?: string;
  /** Extra environment, as the standalone app would read it. Rate limits are off unless set here. */
  env?: Record<string, string>;
  /** Outbox settings beyond the environment's; the worker polls every 20 ms unless set here. */
  mail?: Partial<MailOptions>;
  /** Module options beyond the environment's (settings no variable reaches, such as the key publish delay). */
  auth?: Partial<AuthModuleOptions>;
  /** The standalone server's own JSON logs (pino) instead of `logs`; read them with `pinoLines()`. */
  pinoLogs?: boolean;
}

/** The one helper that builds an app for e2e tests: the standalone app, in-process, on a real database. */
export async function startTestApp(options: TestAppOptions): Promise<TestApp> {
  const config = loadAppConfig({
    DATABASE_URL: options.databaseUrl,
    JWT_SECRET: TEST_JWT_SECRET,
    PASSWORD_RESET_URL: RESET_URL,
    SMTP_URL: options.smtpUrl,
    RATE_LIMIT_PER_MINUTE: '0',
    ...options.env,
  });
  let offsetMs = 0;
  const logs = new CapturingLogger();
  const firstPinoLine = pinoOutput.length;
  const app = await createApp(config, {
    adapter: options.adapter,
    ...(options.pinoLogs ? { logDestination: pinoSink } : { logger: logs }),
    authOverrides: {
      clock: () => new Date(Date.now() + offsetMs),
      mail: { ...authOptionsFrom(config).mail, pollIntervalMs: 20, ...options.mail },
      ...options.auth,
    },
  });
  await app.init();
  if (options.adapter === 'fastify') await (app as NestFastifyApplication).getHttpAdapter().getInstance().ready();
  const outbox = app.get(DataSource).getRepository(OutboxMessage);
  let closing: Promise<void> | undefined;
  return {
    app,
    http: () => request(app.getHttpServer()),
    logs,
    pinoLines: () => pinoOutput.slice(firstPinoLine),
    advanceClock: (ms) => {
      offsetMs += ms;
    },
    drainMail: async (timeoutMs = 10_000) => {
      await app.get(AuthService).settled(); // mails queued after a response (forgot-password)
      const deadline = Date.now() + timeoutMs;
      while ((await outbox.countBy({ status: 'pending' })) > 0) {
        if (Date.now() > deadline) throw new Error(`outbox still has pending messages after ${timeoutMs} ms`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    // Idempotent, so a test can stop an app early and the suite's afterAll still close everything.
    close: () => (closing ??= app.close()),
  };
}

export const ADAPTERS: HttpAdapterKind[] = ['fastify', 'express'];

/** The e2e matrix: every database with every HTTP adapter. */
export function matrix(databases: DatabaseKind[]): [DatabaseKind, HttpAdapterKind][] {
  return databases.flatMap((db) => ADAPTERS.map((adapter) => [db, adapter] as [DatabaseKind, HttpAdapterKind]));
}

/** What `useTestApp` starts for a describe block. */
export interface TestSetup {
  t: TestApp;
  database: TestDatabase;
  smtp: TestSmtpServer;
}

/**
 * Before the enclosing describe block's tests: a fresh database of `databaseKind`, an SMTP server, and
 * the app on both; after them, all three stopped. The returned objects stand for what `beforeAll`
 * started (they forward to it), so tests use them as they are: `t.http()`, `smtp.waitFor(…)`,
 * `sql(database, …)`.
 */
export function useTestApp(databaseKind: DatabaseKind, options: Omit<TestAppOptions, 'databaseUrl' | 'smtpUrl'>): TestSetup {
  const started: Partial<TestSetup> = {};
  beforeAll(async () => {
    started.database = await createTestDatabase(databaseKind);
    started.smtp = await TestSmtpServer.start();
    started.t = await startTestApp({ ...options, databaseUrl: started.database.url, smtpUrl: started.smtp.url });
  });
  afterAll(async () => {
    await started.t?.close();
    await started.smtp?.stop();
    await started.database?.drop();
  });
  return {
    t: standIn(() => started.t, 'the app'),
    database: standIn(() => started.database, 'the database'),
    smtp: standIn(() => started.smtp, 'the SMTP server'),
  };
}

function standIn<T extends object>(current: () => T | undefined, what: string): T {
  return new Proxy({} as T, {
    get(_target, key) {
      const target = current();
      if (!target) throw new Error(`${what} is used before useTestApp's beforeAll started it`);
      const value: unknown = Reflect.get(target, key);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}
