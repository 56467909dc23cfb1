import { spawnSync, SpawnSyncReturns } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { createTestDatabase, sql, TestDatabase } from './support/databases';
import { expectProblem, newAccount } from './support/fixtures';
import { TestSmtpServer } from './support/smtp';
import { RunningApp, startNodeApp } from './support/standalone';

/**
 * The library as a host installs it: `npm pack` at the root, the tarball installed into a fresh Nest host
 * (test/fixtures/package-host) pinned at another Nest 12 minor and typeorm than the library's own dev
 * copies, compiled with `skipLibCheck: false`, started as its own process and driven over HTTP. The host
 * has a global prefix, a global ValidationPipe and error filter, its own `users` table, and imports the
 * module in a feature module; nothing here imports ../src.
 */
const ROOT = join(__dirname, '..');
const FIXTURE = join(__dirname, 'fixtures', 'package-host');
const JWT_SECRET = 'package-host-secret-of-at-least-32-bytes';
const HOST_NEST_VERSION = '12.4.2';
const HOST_TYPEORM_VERSION = '1.1.0';
/** Single copies that must be the host's: two of any of these break DI tokens, metadata or `instanceof`. */
const SHARED = ['@nestjs/common', '@nestjs/core', '@nestjs/typeorm', 'typeorm', 'class-validator', 'class-transformer', 'rxjs', 'reflect-metadata'];
/** What only the standalone server (or an optional feature) needs, so a PostgreSQL host does not get it. */
const NOT_INSTALLED = [
  '@nestjs/platform-fastify', '@nestjs/swagger', 'helmet', '@fastify/static', 'better-sqlite3', 'ioredis', '@nest-lab/throttler-storage-redis',
  // The standalone server's logs and traces, and metrics (an optional peer) for a host that asks for none.
  'nestjs-pino', 'pino-http', 'pino-pretty', 'prom-client', '@opentelemetry/api', '@opentelemetry/sdk-node',
];

function run(command: string, args: string[], cwd: string): SpawnSyncReturns<string> {
  return spawnSync(command, args, { cwd, encoding: 'utf8', env: { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false' } });
}

/**
 * A module of the host's that uses the browser client (`nest-auth-service/client`) with its types; compiled
 * twice with `skipLibCheck: false`: as Node code (the host's @types/node, no DOM) and as a browser page's
 * (DOM, no @types/node).
 */
const CLIENT_CHECK = `import { AuthError, createAuthClient, type SignInResult, type User } from 'nest-auth-service/client';

const client = createAuthClient({ baseUrl: 'https://auth.example.com', mode: 'bearer', refreshMarginSeconds: 30 });
export async function signIn(email: string, password: string): Promise<string> {
  try {
    const result: SignInResult = await client.signIn({ email, password });
    if ('mfaRequired' in result) return result.mfaToken;
    const user: User = result.user;
    const response: Response = await client.fetch('/api/notes/mine', { method: 'GET' });
    return \`\${user.fullName ?? user.username} \${user.createdAt} \${response.status} \${client.accessToken() ?? ''}\`;
  } catch (error) {
    if (error instanceof AuthError) return \`\${error.status} \${error.detail} \${error.errors.map((e) => e.field).join()} \${error.problem.type}\`;
    throw error;
  }
}
export const unsubscribe: () => void = client.onChange((user) => user?.isVerified);
`;

function clientCheckConfig(lib: string[], types: string[]): string {
  return JSON.stringify({
    compilerOptions: { module: 'node20', moduleResolution: 'node16', target: 'ES2022', lib, types, strict: true, skipLibCheck: false, noEmit: true },
    files: ['check.mts'],
  });
}

function mustRun(command: string, args: string[], cwd: string): string {
  const result = run(command, args, cwd);
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed (${result.status}):\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

/** Installed package folders (one line each from `npm ls --all --parseable`) and node_modules' size. */
function footprint(dir: string): { packages: number; megabytes: number } {
  const packages = new Set(run('npm', ['ls', '--all', '--parseable'], dir).stdout.trim().split('\n')).size - 1;
  const megabytes = Number(mustRun('du', ['-sm', join(dir, 'node_modules')], dir).split('\t')[0]);
  return { packages, megabytes };
}

describe('the packed library installed into a fresh Nest host', () => {
  let work: string;
  let host: string;
  let packedFiles: string[];
  let npmLs: SpawnSyncReturns<string>;
  let tsc: SpawnSyncReturns<string>;
  let clientTsc: { node: SpawnSyncReturns<string>; browser: SpawnSyncReturns<string> };
  let database: TestDatabase;
  let smtp: TestSmtpServer;
  let app: RunningApp;
  const http = () => request(app.baseUrl);

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'auth-package-'));
    host = join(work, 'host');
    const started = Date.now();
    const [packed] = JSON.parse(mustRun('npm', ['pack', '--json', '--pack-destination', work], ROOT));
    packedFiles = packed.files.map((file: { path: string }) => file.path);
    const packSeconds = (Date.now() - started) / 1000;

    cpSync(FIXTURE, host, { recursive: true, filter: (source) => !/[/\\](node_modules|dist)$/.test(source) });
    mustRun('npm', ['install', '--prefer-offline'], host);
    const before = footprint(host);
    const installStarted = Date.now();
    mustRun('npm', ['install', '--prefer-offline', join(work, packed.filename)], host);
    const installSeconds = (Date.now() - installStarted) / 1000;
    const after = footprint(host);
    npmLs = run('npm', ['ls', '--all'], host);
    tsc = run(join(host, 'node_modules', '.bin', 'tsc'), ['-p', '.'], host);
    const clientDir = join(host, 'client-check');
    mkdirSync(clientDir);
    writeFileSync(join(clientDir, 'check.mts'), CLIENT_CHECK);
    writeFileSync(join(clientDir, 'tsconfig.node.json'), clientCheckConfig(['ES2023'], ['node']));
    writeFileSync(join(clientDir, 'tsconfig.browser.json'), clientCheckConfig(['ES2022', 'DOM', 'DOM.Iterable'], []));
    clientTsc = {
      node: run(join(host, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.node.json'], clientDir),
      browser: run(join(host, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.browser.json'], clientDir),
    };
    console.log(
      `package: ${packedFiles.length} files, packed in ${packSeconds.toFixed(1)} s; host gains ` +
        `${after.packages - before.packages} packages (${before.packages} -> ${after.packages}) and ` +
        `${after.megabytes - before.megabytes} MB (${before.megabytes} -> ${after.megabytes}); install ${installSeconds.toFixed(1)} s`,
    );
    if (tsc.status !== 0) return; // the compile test reports it

    database = await createTestDatabase('postgres');
    // The host's own table of that name, older than the auth module.
    await sql(database, 'CREATE TABLE users (id SERIAL PRIMARY KEY, name VARCHAR(50) NOT NULL)');
    await sql(database, "INSERT INTO users (name) VALUES ('ada'), ('grace')");
    smtp = await TestSmtpServer.start();
    app = await startNodeApp(
      join(host, 'dist', 'main.js'),
      { DATABASE_URL: database.url, SMTP_URL: smtp.url, JWT_SECRET, UV_THREADPOOL_SIZE: '8' },
      host,
      '/api/notes/host-users',
    );
  }, 300_000);

  afterAll(async () => {
    await app?.stop();
    await smtp?.stop();
    await database?.drop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('packs the built library and the browser client only: no sources, tests, standalone server or CI files', () => {
    const client = ['dist/client/index.js', 'dist/client/index.d.ts', 'dist/client/api-types.d.ts', 'dist/client/package.json'];
    expect(packedFiles).toEqual(expect.arrayContaining(['package.json', 'README.md', 'dist/lib/index.js', 'dist/lib/index.d.ts', ...client]));
    const unexpected = packedFiles.filter((path) => !/^(package\.json|README\.md|LICENSE|dist\/lib\/.+\.(js|d\.ts))$/.test(path) && !client.includes(path));
    expect(unexpected).toEqual([]);
    expect(packedFiles.filter((path) => path.startsWith('dist/lib/app/'))).toEqual([]);
  });

  it('ships the browser client as nest-auth-service/client, typed for Node and for a browser page (skipLibCheck: false)', () => {
    expect(clientTsc.node.stdout + clientTsc.node.stderr).toBe('');
    expect(clientTsc.node.status).toBe(0);
    expect(clientTsc.browser.stdout + clientTsc.browser.stderr).toBe('');
    expect(clientTsc.browser.status).toBe(0);
  });

  it('lets the host import nest-auth-service/client and drive its auth routes with it', () => {
    const account = newAccount();
    const script = `
      import { AuthError, createAuthClient } from 'nest-auth-service/client';
      const client = createAuthClient({ baseUrl: process.argv[1], mode: 'cookie' });
      const { user } = await client.signUp(JSON.parse(process.argv[2]));
      const me = await client.me();
      const wrong = await client.signIn({ email: user.email, password: 'not the password' }).catch((error) => error);
      console.log(JSON.stringify({ email: me.email, fullName: me.fullName, wrong: wrong instanceof AuthError && [wrong.status, wrong.detail] }));
    `;
    const result = run(process.execPath, ['--input-type=module', '-e', script, `${app.baseUrl}/api/v1/auth`, JSON.stringify(account)], host);
    expect(result.stderr).toBe('');
    expect(JSON.parse(result.stdout)).toEqual({ email: account.email, fullName: null, wrong: [401, 'Invalid email or password'] });
  });

  it('installs with no peer conflict, and uses the host’s single copy of each framework package', () => {
    expect(npmLs.stderr).toBe('');
    expect(npmLs.status).toBe(0);
    for (const name of SHARED) {
      const copies = new Set(run('npm', ['ls', name, '--all', '--parseable'], host).stdout.trim().split('\n').filter(Boolean));
      expect({ name, copies: [...copies] }).toEqual({ name, copies: [join(host, 'node_modules', name)] });
    }
    const version = (name: string) => JSON.parse(readFileSync(join(host, 'node_modules', name, 'package.json'), 'utf8')).version;
    expect(version('@nestjs/core')).toBe(HOST_NEST_VERSION);
    expect(version('typeorm')).toBe(HOST_TYPEORM_VERSION);
  });

  it('brings nothing only the standalone server or an unused option needs', () => {
    expect(NOT_INSTALLED.filter((name) => existsSync(join(host, 'node_modules', name)))).toEqual([]);
  });

  it('compiles in a strict host with skipLibCheck: false', () => {
    expect(tsc.stdout + tsc.stderr).toBe('');
    expect(tsc.status).toBe(0);
  });

  it('serves the auth routes under the host’s global prefix, mails, and scopes the refresh cookie to them', async () => {
    const account = newAccount();
    const res = await http().post('/api/v1/auth/signup').send(account).expect(201);
    expect(res.body.user.email).toBe(account.email);
    expect(res.body).not.toHaveProperty('refresh_token');
    const cookie = String(res.headers['set-cookie']);
    expect(cookie).toMatch(/^refresh_token=[^;]+;.*Path=\/api\/v1\/auth;.*HttpOnly/);
    expect((await smtp.waitFor(account.email)).subject).toContain('Welcome');

    const refreshed = await http().post('/api/v1/auth/refresh').set('Cookie', cookie.split(';')[0]).send({}).expect(200);
    expect(refreshed.body.access_token).toEqual(expect.any(String));
  });

  it('guards the host’s routes with the exported guard, in the importing module and (isGlobal) elsewhere', async () => {
    const account = newAccount();
    const { body } = await http().post('/api/v1/auth/signup').send(account).expect(201);
    await http().get('/api/notes/mine').auth(body.access_token, { type: 'bearer' }).expect(200, { owner: account.username });
    await http().get('/api/profiles/me').auth(body.access_token, { type: 'bearer' }).expect(200, { found: true });
    // Refused on a host route: the host's filter answers, in the host's format.
    await http().get('/api/notes/mine').expect(401, { hostError: true, status: 401 });
  });

  it('keeps the auth contract under the host’s ValidationPipe and filter: 422 with errors, 400, 413', async () => {
    const invalid = await http().post('/api/v1/auth/signup').send({ email: 'not-an-email', username: 'ok_name', password: 'long enough pass' });
    expectProblem(invalid, 422, 'Request validation failed');
    expect(invalid.body.errors).toEqual(expect.arrayContaining([expect.objectContaining({ field: 'email' })]));

    const malformed = await http().post('/api/v1/auth/signin').set('Content-Type', 'application/json').send('{"email":');
    expectProblem(malformed, 400);

    const big = await http().post('/api/v1/auth/signin').send({ email: 'a@example.com', password: 'x'.repeat(17 * 1024) });
    expectProblem(big, 413);
  });

  it('leaves the host’s own routes in the host’s format', async () => {
    await http().post('/api/notes').send({}).expect(400, { hostError: true, status: 400 });
    await http().get('/api/notes/missing').expect(404, { hostError: true, status: 404 });
  });

  it('answers parallel sign-ups with one email with one 201 and 400s, on the host’s typeorm', async () => {
    const account = newAccount();
    const results = await Promise.all(
      Array.from({ length: 6 }, (_, i) => http().post('/api/v1/auth/signup').send({ ...account, username: `${account.username.slice(0, 20)}_${i}` })),
    );
    expect(results.map((res) => res.status).sort()).toEqual([201, 400, 400, 400, 400, 400]);
    for (const res of results.filter((r) => r.status === 400)) expectProblem(res, 400, 'Email already registered');
  });

  it('keeps its tables beside the host’s own users table (tablePrefix auth_)', async () => {
    await http().get('/api/notes/host-users').expect(200, { count: 2 });
    const tables = (await sql(database, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")) as { table_name: string }[];
    const names = tables.map((t) => t.table_name).sort();
    expect(names).toEqual(expect.arrayContaining(['users', 'auth_users', 'auth_user_sessions', 'auth_refresh_tokens']));
    expect(names.filter((name) => !name.startsWith('auth_'))).toEqual(['migrations', 'users']);
  });
});

