import {
  ArgumentsHost,
  Catch,
  ClassSerializerInterceptor,
  Controller,
  ExceptionFilter,
  Get,
  HttpException,
  INestApplication,
  Module,
  NotFoundException,
  Post,
  Body,
  UseGuards,
  ValidationPipe,
} from '@nestjs/common';
import { NestFactory, Reflector } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import { InjectRepository, TypeOrmModule } from '@nestjs/typeorm';
import { IsString } from 'class-validator';
import request from 'supertest';
import { Column, Entity, PrimaryGeneratedColumn, Repository } from 'typeorm';
import { DataSource } from 'typeorm';
import { AUTH_ENTITIES, AUTH_MIGRATIONS, AuthModule, CurrentUser, JwtAuthGuard, User, UsersService } from '../src';
import { createTestDatabase, DATABASES, sql, TestDatabase } from './support/databases';
import { expectProblem, newAccount } from './support/fixtures';
import { TestSmtpServer } from './support/smtp';
import { APP_REDIRECT, Browser, callbackUrl, CLIENT_ID, CLIENT_SECRET, exchange, PUBLIC_URL, signInThroughIdp, TestIdp } from './support/oidc';
import { matrix, TEST_JWT_SECRET } from './support/test-app';

/** The host's own `users` table, which the module's tables must leave alone (tablePrefix below). */
@Entity('users')
class HostUser {
  @PrimaryGeneratedColumn()
  id: number;

  @Column({ type: 'varchar', length: 50 })
  name: string;
}

class CreateNoteDto {
  @IsString()
  title: string;
}

/** A host filter for everything: its own error format, which must never reach the auth routes. */
@Catch()
class HostErrorFilter implements ExceptionFilter {
  catch(exception: unknown, host: ArgumentsHost): void {
    const status = exception instanceof HttpException ? exception.getStatus() : 500;
    const response = host.switchToHttp().getResponse<{ status?: (s: number) => unknown; code?: (s: number) => unknown }>();
    const body = { hostError: true, status };
    const reply = response as unknown as { code?: (s: number) => { send(b: unknown): void }; status: (s: number) => { json(b: unknown): void } };
    if (typeof reply.code === 'function') reply.code(status).send(body);
    else reply.status(status).json(body);
  }
}

@Controller('notes')
class NotesController {
  constructor(@InjectRepository(HostUser) private readonly hostUsers: Repository<HostUser>) {}

  @Get('mine')
  @UseGuards(JwtAuthGuard)
  mine(@CurrentUser() user: User): { owner: string } {
    return { owner: user.username };
  }

  @Post()
  create(@Body() dto: CreateNoteDto): { title: string } {
    return { title: dto.title };
  }

  @Get('missing')
  missing(): never {
    throw new NotFoundException();
  }

  @Get('host-users')
  async count(): Promise<{ count: number }> {
    return { count: await this.hostUsers.count() };
  }
}

/** The auth module imported by a feature module of the host, not by its root. */
@Module({
  imports: [
    TypeOrmModule.forFeature([HostUser]),
    AuthModule.forRootAsync({
      isGlobal: true,
      routePrefix: 'v1/auth',
      tablePrefix: 'auth_',
      useFactory: () => ({
        jwtSecret: TEST_JWT_SECRET,
        passwordResetUrl: 'https://host.example.test/reset',
        refreshTokenCookie: true,
        mail: { smtpUrl: smtpUrl() },
        oidc: {
          providers: [{ name: 'test', issuer: currentIdp!.issuer, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET }],
          publicUrl: PUBLIC_URL,
          redirectUrls: [APP_REDIRECT],
        },
      }),
    }),
  ],
  controllers: [NotesController],
})
class NotesModule {}

/** Imports nothing of the auth module: it sees `UsersService` because the module is global. */
@Controller('profiles')
class ProfilesController {
  constructor(private readonly users: UsersService) {}

  @Get('me')
  @UseGuards(JwtAuthGuard)
  async me(@CurrentUser() user: User): Promise<{ found: boolean }> {
    return { found: (await this.users.findById(user.id)) !== null };
  }
}

@Module({ controllers: [ProfilesController] })
class ProfilesModule {}

let currentSmtpUrl = '';
let currentIdp: TestIdp | undefined;
const smtpUrl = () => currentSmtpUrl;

function hostModule(database: TestDatabase) {
  const databaseOptions =
    database.kind === 'postgres'
      ? ({ type: 'postgres', url: database.url } as const)
      : ({ type: 'better-sqlite3', database: database.url.slice('sqlite:'.length) } as const);

  @Module({
    imports: [
      TypeOrmModule.forRoot({ ...databaseOptions, entities: [HostUser, ...AUTH_ENTITIES], migrations: AUTH_MIGRATIONS, migrationsRun: true }),
      NotesModule,
      ProfilesModule,
    ],
  })
  class HostAppModule {}
  return HostAppModule;
}

describe.each(matrix(DATABASES))('a host with its own conventions (global prefix, pipe, filter, interceptor, users table) on %s with %s', (databaseKind, adapter) => {
  let database: TestDatabase;
  let smtp: TestSmtpServer;
  let app: INestApplication;
  const http = () => request(app.getHttpServer());

  beforeAll(async () => {
    database = await createTestDatabase(databaseKind);
    // The host's table exists before the module's migrations run.
    await sql(database, database.kind === 'postgres' ? 'CREATE TABLE users (id serial PRIMARY KEY, name varchar(50) NOT NULL)' : 'CREATE TABLE users (id integer PRIMARY KEY AUTOINCREMENT, name varchar(50) NOT NULL)');
    await sql(database, "INSERT INTO users (name) VALUES ('host row')");
    smtp = await TestSmtpServer.start();
    currentSmtpUrl = smtp.url;
    currentIdp ??= await TestIdp.start([callbackUrl('test')]);
    const module = hostModule(database);
    app =
      adapter === 'fastify'
        ? await NestFactory.create<NestFastifyApplication>(module, new FastifyAdapter(), { logger: false })
        : await NestFactory.create(module, new ExpressAdapter(), { logger: false });
    app.setGlobalPrefix('api');
    app.useGlobalPipes(new ValidationPipe({ whitelist: true, forbidNonWhitelisted: true, transform: true }));
    app.useGlobalFilters(new HostErrorFilter());
    app.useGlobalInterceptors(new ClassSerializerInterceptor(app.get(Reflector)));
    await app.init();
    if (adapter === 'fastify') await (app as NestFastifyApplication).getHttpAdapter().getInstance().ready();
  });

  afterAll(async () => {
    await app?.close();
    await smtp?.stop();
    await database?.drop();
  });

  afterAll(async () => {
    await currentIdp?.stop();
    currentIdp = undefined;
  });

  it('serves the OIDC routes under the prefixes too: the callback URL and the state cookie include them; identities in auth_identities', async () => {
    const authorize = await http().get(`/api/v1/auth/oidc/test/authorize?redirect_uri=${encodeURIComponent(APP_REDIRECT)}`).expect(302);
    expect(new URL(authorize.headers.location).searchParams.get('redirect_uri')).toBe(`${PUBLIC_URL}/api/v1/auth/oidc/test/callback`);
    expect(authorize.headers['set-cookie']?.[0]).toMatch(/; Path=\/api\/v1\/auth\/oidc\/test\/callback; HttpOnly; Secure; SameSite=Lax$/);
    const sub = `host-${databaseKind}-${adapter}`;
    await currentIdp!.addAccount({ id: sub, email: `${sub}@idp.test`, email_verified: true });
    const browser = new Browser();
    const outcome = await signInThroughIdp({ http }, browser, currentIdp!, sub);
    const res = await exchange({ http }, browser, outcome.code!).expect(200);
    expect(res.body.user.email).toBe(`${sub}@idp.test`);
    expect(await sql(database, 'SELECT subject FROM auth_identities')).toEqual([{ subject: sub }]);
  });

  it('serves the auth routes under the global prefix plus routePrefix, with the refresh cookie on that path', async () => {
    const account = newAccount();
    const res = await http().post('/api/v1/auth/signup').send(account).expect(201);
    expect(res.body.user).toMatchObject({ email: account.email, username: account.username });
    expect(res.body.refresh_token).toBeUndefined();
    expect(res.headers['set-cookie']?.[0]).toMatch(/; Path=\/api\/v1\/auth; HttpOnly; Secure; SameSite=Strict$/);
    await http().post('/api/api/v1/auth/signup').send(newAccount()).expect((r) => expect(r.status).not.toBe(201));
  });

  it("keeps its 422 with errors under the host's ValidationPipe", async () => {
    const res = await http().post('/api/v1/auth/signup').send({ email: 'not-an-email', username: 'a b', password: 'x', extra: 1 });
    expectProblem(res, 422);
    expect(res.body.errors.map((e: { field: string }) => e.field)).toEqual(expect.arrayContaining(['email', 'username', 'password']));
  });

  it('answers malformed JSON with its own 400 problem details', async () => {
    const res = await http().post('/api/v1/auth/signin').set('Content-Type', 'application/json').send('{"email": ');
    expectProblem(res, 400, 'Malformed request body: it is not valid JSON');
  });

  it("refuses a form-encoded sign-up with its own 415, though the host's parsers take forms", async () => {
    const form = new URLSearchParams({ ...newAccount() }).toString();
    const res = await http().post('/api/v1/auth/signup').set('Content-Type', 'application/x-www-form-urlencoded').send(form);
    expectProblem(res, 415, 'Unsupported content type: send application/json');
  });

  it('answers a body over 16 KiB with its own 413, whatever the host parser allows', async () => {
    const res = await http().post('/api/v1/auth/signin').send({ email: 'a@example.com', password: 'p'.repeat(20 * 1024) });
    expectProblem(res, 413, 'Request body is too large');
  });

  it('answers its errors as problem details, not in the host filter format', async () => {
    const res = await http().post('/api/v1/auth/signin').send({ email: 'nobody@example.com', password: 'whatever123' });
    expectProblem(res, 401, 'Invalid email or password');
    expect(res.headers['www-authenticate']).toBe('Bearer');
  });

  it("leaves the host's own routes to the host's pipe and filter", async () => {
    await http().post('/api/notes').send({ title: 't', extra: 1 }).expect(400, { hostError: true, status: 400 });
    await http().post('/api/notes').set('Content-Type', 'application/json').send('{"title": ').expect(400, { hostError: true, status: 400 });
    await http().get('/api/notes/missing').expect(404, { hostError: true, status: 404 });
  });

  it("guards a host route of the feature module with the exported guard and @CurrentUser()", async () => {
    const account = newAccount();
    const { body } = await http().post('/api/v1/auth/signup').send(account).expect(201);
    // The host's route, so the host's filter words the refusal.
    await http().get('/api/notes/mine').expect(401, { hostError: true, status: 401 });
    await http().get('/api/notes/mine').auth(body.access_token, { type: 'bearer' }).expect(200, { owner: account.username });
  });

  it('gives one 201 and 400s to parallel sign-ups with one email', async () => {
    const email = newAccount().email;
    const results = await Promise.all(Array.from({ length: 6 }, () => http().post('/api/v1/auth/signup').send(newAccount({ email }))));
    expect(results.map((r) => r.status).sort()).toEqual([201, 400, 400, 400, 400, 400]);
    for (const r of results.filter((x) => x.status === 400)) expect(r.body.detail).toBe('Email already registered');
  });

  it("keeps its tables under the prefix and the host's users table untouched", async () => {
    await http().get('/api/notes/host-users').expect(200, { count: 1 });
    const rows = (await sql(database, 'SELECT name FROM users')) as { name: string }[];
    expect(rows).toEqual([{ name: 'host row' }]);
    const authUsers = (await sql(database, 'SELECT COUNT(*) AS n FROM auth_users')) as { n: string | number }[];
    expect(Number(authUsers[0].n)).toBeGreaterThan(0);
  });

  it('with isGlobal, lends its services and guard to a module that does not import it', async () => {
    const { body } = await http().post('/api/v1/auth/signup').send(newAccount()).expect(201);
    await http().get('/api/profiles/me').auth(body.access_token, { type: 'bearer' }).expect(200, { found: true });
  });

  it("reverts its prefixed migrations and leaves the host's users table", async () => {
    const dataSource = app.get(DataSource);
    const before = await dataSource.createQueryRunner().getTables();
    expect(before.map((table) => table.name)).toEqual(expect.arrayContaining(['auth_users', 'auth_user_sessions', 'users']));
    for (let i = 0; i < AUTH_MIGRATIONS.length; i++) await dataSource.undoLastMigration();
    const tables = await dataSource.createQueryRunner().getTables();
    expect(tables.map((table) => table.name).filter((name) => name.startsWith('auth_'))).toEqual([]);
    expect(await sql(database, 'SELECT name FROM users')).toEqual([{ name: 'host row' }]);
  });
});
