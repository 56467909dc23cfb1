import { Controller, Get, Injectable, INestApplication, Module, UseGuards } from '@nestjs/common';
import { APP_GUARD, NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import { TypeOrmModule } from '@nestjs/typeorm';
import request from 'supertest';
import { AdminService, AUTH_ENTITIES, AUTH_MIGRATIONS, AuthModule, CurrentUser, JwtAuthGuard, Public, RequireAal, Roles, User, UsersService } from '../src';
import { base32Decode, hotp, stepAt } from '../src/mfa/totp';
import { createTestDatabase, DATABASES, TestDatabase } from './support/databases';
import { newAccount } from './support/fixtures';
import { TestSmtpServer } from './support/smtp';
import { matrix, TEST_JWT_SECRET } from './support/test-app';

/** The host's own settings service, standing in for @nestjs/config or similar. */
@Injectable()
class HostSettings {
  constructor(readonly smtpUrl: string) {}
  readonly jwtSecret = TEST_JWT_SECRET;
}

@Controller('projects')
class ProjectsController {
  constructor(private readonly users: UsersService) {}

  @Get('mine')
  @UseGuards(JwtAuthGuard)
  async mine(@CurrentUser() user: User): Promise<{ owner: string; found: boolean }> {
    return { owner: user.username, found: (await this.users.findById(user.id)) !== null };
  }
}

/** Guarded app-wide by the exported guard; @Public() opens a route. */
@Controller('pages')
class PagesController {
  @Get('home')
  @Public()
  home(): { page: string } {
    return { page: 'home' };
  }

  @Get('account')
  account(@CurrentUser() user: User): { email: string } {
    return { email: user.email };
  }

  /** A sensitive page of the host: a user with a second factor must have shown it in this session. */
  @Get('billing')
  @RequireAal('aal2')
  billing(@CurrentUser() user: User): { owner: string } {
    return { owner: user.username };
  }

  /** For staff only: `@Roles` with the app-wide guard. */
  @Get('support')
  @Roles('support', 'admin')
  support(@CurrentUser() user: User): { staff: string } {
    return { staff: user.username };
  }
}

function hostModule(database: TestDatabase, smtpUrl: string) {
  const databaseOptions =
    database.kind === 'postgres'
      ? ({ type: 'postgres', url: database.url } as const)
      : ({ type: 'better-sqlite3', database: database.url.slice('sqlite:'.length) } as const);

  @Module({ providers: [{ provide: HostSettings, useValue: new HostSettings(smtpUrl) }], exports: [HostSettings] })
  class SettingsModule {}

  @Module({
    imports: [
      TypeOrmModule.forRoot({ ...databaseOptions, entities: AUTH_ENTITIES, migrations: AUTH_MIGRATIONS, migrationsRun: true }),
      AuthModule.forRootAsync({
        imports: [SettingsModule],
        inject: [HostSettings],
        useFactory: (settings: HostSettings) => ({
          jwtSecret: settings.jwtSecret,
          passwordResetUrl: 'https://host.example.test/reset',
          mail: { smtpUrl: settings.smtpUrl, from: 'host@example.test' },
        }),
      }),
    ],
    controllers: [ProjectsController, PagesController],
    providers: [{ provide: APP_GUARD, useClass: JwtAuthGuard }],
  })
  class HostAppModule {}

  return HostAppModule;
}

describe.each(matrix(DATABASES))(
  'a host app importing AuthModule.forRootAsync on %s with %s',
  (databaseKind, adapter) => {
    let database: TestDatabase;
    let smtp: TestSmtpServer;
    let app: INestApplication;

    beforeAll(async () => {
      database = await createTestDatabase(databaseKind);
      smtp = await TestSmtpServer.start();
      const module = hostModule(database, smtp.url);
      app =
        adapter === 'fastify'
          ? await NestFactory.create<NestFastifyApplication>(module, new FastifyAdapter(), { logger: false })
          : await NestFactory.create(module, new ExpressAdapter(), { logger: false });
      await app.init();
      if (adapter === 'fastify') await (app as NestFastifyApplication).getHttpAdapter().getInstance().ready();
    });

    afterAll(async () => {
      await app?.close();
      await smtp?.stop();
      await database?.drop();
    });

    it('serves the auth routes, which stay open under an app-wide JwtAuthGuard', async () => {
      const account = newAccount();
      const res = await request(app.getHttpServer()).post('/api/v1/auth/signup').send(account).expect(201);
      expect(res.body.user.email).toBe(account.email);
      const mail = await smtp.waitFor(account.email);
      expect(mail.subject).toContain('Welcome');
    });

    it('answers the OIDC routes of a factory that configured no provider with 404 Unknown provider, the identities route with []', async () => {
      const http = () => request(app.getHttpServer());
      const res = await http().get('/api/v1/auth/oidc/google/authorize?redirect_uri=https%3A%2F%2Fhost.example.test%2F');
      expect(res.status).toBe(404);
      expect(res.body.detail).toBe('Unknown provider');
      expect((await http().post('/api/v1/auth/oidc/exchange').send({ code: 'x' })).body.detail).toBe('Invalid or expired code');
      const account = newAccount();
      const token = (await http().post('/api/v1/auth/signup').send(account).expect(201)).body.access_token as string;
      await http().get('/api/v1/auth/identities').set('Authorization', `Bearer ${token}`).expect(200, []);
    });

    it("protects the host's own routes with the exported guard and @CurrentUser()", async () => {
      const account = newAccount();
      const { body } = await request(app.getHttpServer()).post('/api/v1/auth/signup').send(account).expect(201);
      await request(app.getHttpServer()).get('/projects/mine').expect(401);
      const mine = await request(app.getHttpServer()).get('/projects/mine').auth(body.access_token, { type: 'bearer' }).expect(200);
      expect(mine.body).toEqual({ owner: account.username, found: true });
    });

    it('guards every route app-wide except those marked @Public()', async () => {
      const account = newAccount();
      const { body } = await request(app.getHttpServer()).post('/api/v1/auth/signup').send(account).expect(201);
      await request(app.getHttpServer()).get('/pages/home').expect(200, { page: 'home' });
      await request(app.getHttpServer()).get('/pages/account').expect(401);
      await request(app.getHttpServer()).get('/pages/account').auth(body.access_token, { type: 'bearer' }).expect(200, { email: account.email });
    });

    it("applies @RequireAal('aal2') to the host's routes: open without a second factor, aal2 once one is on", async () => {
      const account = newAccount();
      const http = () => request(app.getHttpServer());
      const { body } = await http().post('/api/v1/auth/signup').send(account).expect(201);
      const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });
      await http().get('/pages/billing').set(bearer(body.access_token)).expect(200, { owner: account.username });

      const setup = await http().post('/api/v1/auth/mfa/totp/setup').set(bearer(body.access_token)).expect(200);
      const secret = base32Decode(setup.body.secret);
      await http().post('/api/v1/auth/mfa/totp/confirm').set(bearer(body.access_token)).send({ code: hotp(secret, stepAt(Date.now())) }).expect(200);
      // The password-only token of the session that turned TOTP on: not enough any more.
      const refused = await http().get('/pages/billing').set(bearer(body.access_token));
      // The host installs no problem details filter: its own routes answer in Nest's default format.
      expect(refused.status).toBe(403);
      expect(refused.body.message).toBe('Additional authentication required');
      const refreshed = await http().post('/api/v1/auth/refresh').send({ refresh_token: body.refresh_token }).expect(200);
      await http().get('/pages/billing').set(bearer(refreshed.body.access_token)).expect(200, { owner: account.username });
    });

    it("applies @Roles() to the host's routes: any one of the roles, checked on the next request after a change", async () => {
      const account = newAccount();
      const http = () => request(app.getHttpServer());
      const { body } = await http().post('/api/v1/auth/signup').send(account).expect(201);
      const bearer = { Authorization: `Bearer ${body.access_token}` };
      const refused = await http().get('/pages/support').set(bearer);
      expect(refused.status).toBe(403);
      expect(refused.body.message).toBe('Insufficient role');
      await app.get(AdminService).changeRoleByEmail(account.email, 'support', true);
      // The same token: the guard reads the stored roles, not the token's.
      await http().get('/pages/support').set(bearer).expect(200, { staff: account.username });
      await app.get(AdminService).changeRoleByEmail(account.email, 'support', false);
      expect((await http().get('/pages/support').set(bearer)).status).toBe(403);
    });

    it('answers its own routes with problem details even under the host app', async () => {
      const res = await request(app.getHttpServer()).post('/api/v1/auth/signin').send({ email: 'nobody@example.com', password: 'whatever123' });
      expect(res.status).toBe(401);
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(res.body.detail).toBe('Invalid email or password');
    });
  },
);
