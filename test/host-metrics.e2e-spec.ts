import { Controller, Get, Header, Inject, INestApplication, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import { TypeOrmModule } from '@nestjs/typeorm';
import { Counter, Registry } from 'prom-client';
import request from 'supertest';
import { AUTH_ENTITIES, AUTH_METRIC_NAMES, AUTH_MIGRATIONS, AuthModule } from '../src';
import { createTestDatabase, DATABASES, TestDatabase } from './support/databases';
import { newAccount } from './support/fixtures';
import { sampleOf } from './support/metrics';
import { ADAPTERS, TEST_JWT_SECRET } from './support/test-app';

const HOST_REGISTRY = Symbol('HOST_REGISTRY');

/** The host's own scrape endpoint, over its own registry. */
@Controller('host-metrics')
class HostMetricsController {
  constructor(@Inject(HOST_REGISTRY) private readonly registry: Registry) {}

  @Get()
  @Header('Content-Type', 'text/plain; version=0.0.4; charset=utf-8')
  metrics(): Promise<string> {
    return this.registry.metrics();
  }
}

describe.each(ADAPTERS)('a host app registering the module metrics in its own prom-client registry, with %s', (adapter) => {
  let database: TestDatabase;
  let app: INestApplication;
  let registry: Registry;
  let hostCounter: Counter;

  beforeAll(async () => {
    database = await createTestDatabase(DATABASES[0]);
    registry = new Registry();
    hostCounter = new Counter({ name: 'host_orders_total', help: 'The host app metric of its own', registers: [registry] });
    const databaseOptions =
      database.kind === 'postgres'
        ? ({ type: 'postgres', url: database.url } as const)
        : ({ type: 'better-sqlite3', database: database.url.slice('sqlite:'.length) } as const);

    @Module({
      imports: [
        TypeOrmModule.forRoot({ ...databaseOptions, entities: AUTH_ENTITIES, migrations: AUTH_MIGRATIONS, migrationsRun: true }),
        AuthModule.forRootAsync({
          useFactory: () => ({
            jwtSecret: TEST_JWT_SECRET,
            passwordResetUrl: 'https://host.example.test/reset',
            mail: { outputDir: `${process.env.TMPDIR ?? '/tmp'}/host-metrics-mail-${process.pid}` },
            rateLimit: { perAddressPerMinute: 0 },
            metrics: { registry },
          }),
        }),
      ],
      controllers: [HostMetricsController],
      providers: [{ provide: HOST_REGISTRY, useValue: registry }],
    })
    class HostModule {}

    app =
      adapter === 'fastify'
        ? await NestFactory.create<NestFastifyApplication>(HostModule, new FastifyAdapter(), { logger: false })
        : await NestFactory.create(HostModule, new ExpressAdapter(), { logger: false });
    await app.init();
    if (adapter === 'fastify') await (app as NestFastifyApplication).getHttpAdapter().getInstance().ready();
  });

  afterAll(async () => {
    await app?.close();
    await database?.drop();
  });

  it('finds the auth metrics next to its own, moving with real sign-ins', async () => {
    const http = () => request(app.getHttpServer());
    const account = newAccount();
    await http().post('/api/v1/auth/signup').send(account).expect(201);
    await http().post('/api/v1/auth/signin').send({ email: account.email, password: account.password }).expect(200);
    await http().post('/api/v1/auth/signin').send({ email: account.email, password: 'a wrong password here' }).expect(401);
    hostCounter.inc(2);
    const text = (await http().get('/host-metrics').expect(200)).text;
    expect(sampleOf(text, 'host_orders_total')).toBe(2);
    expect(sampleOf(text, AUTH_METRIC_NAMES.signins, { step: 'password', outcome: 'success' })).toBe(1);
    expect(sampleOf(text, AUTH_METRIC_NAMES.signins, { step: 'password', outcome: 'invalid_credentials' })).toBe(1);
    expect(text).toContain(`${AUTH_METRIC_NAMES.outbox}{status="pending"}`);
    expect(text).toContain(`${AUTH_METRIC_NAMES.hashingQueue} 0`);
    // The registry holds the module's metrics themselves, not copies: the host can read them directly.
    expect(registry.getSingleMetric(AUTH_METRIC_NAMES.refreshes)).toBeDefined();
    // The module adds no HTTP histogram or process metrics of its own to a host's registry.
    expect(text).not.toContain('http_request_duration_seconds');
    expect(text).not.toContain('process_cpu');
  });
});
