import { createServer } from 'node:net';
import { AuthErrors } from '../src/common/auth.errors';
import { createTestDatabase, DATABASES, TestDatabase } from './support/databases';
import { FakeIdp } from './support/fake-idp';
import { expectProblem, signUp, waitUntil } from './support/fixtures';
import {
  APP_REDIRECT,
  authorizeThroughIdp,
  Browser,
  callbackUrl,
  CLIENT_ID,
  CLIENT_SECRET,
  exchange,
  oidcEnv,
  PUBLIC_URL,
  signInThroughIdp,
  TestIdp,
  visitCallback,
} from './support/oidc';
import { startTestApp, TestApp } from './support/test-app';

const AUTH = '/api/v1/auth';
let unique = 0;
const nextId = () => `${process.pid}-o${++unique}`;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe.each(DATABASES)('OIDC across two instances on %s', (databaseKind) => {
  let database: TestDatabase;
  let idp: TestIdp;
  let first: TestApp;
  let second: TestApp;

  beforeAll(async () => {
    idp = await TestIdp.start([callbackUrl('test')]);
    database = await createTestDatabase(databaseKind);
    // One after the other: the first applies the migrations.
    first = await startTestApp({ adapter: 'fastify', databaseUrl: database.url, env: oidcEnv(idp.issuer) });
    second = await startTestApp({ adapter: 'express', databaseUrl: database.url, env: oidcEnv(idp.issuer) });
  });

  afterAll(async () => {
    await first?.close();
    await second?.close();
    await database?.drop();
    await idp?.stop();
  });

  it('serves a callback on the other instance than the one that created the state, and the exchange on either', async () => {
    const id = nextId();
    await idp.addAccount({ id: `sub-${id}`, email: `two-${id}@idp.test`, email_verified: true });
    const browser = new Browser();
    const callback = await authorizeThroughIdp(first, browser, idp, { loginHint: `sub-${id}` });
    const outcome = await visitCallback(second, browser, callback);
    expect(outcome.code).toBeTruthy();
    const res = await exchange(first, browser, outcome.code!).expect(200);
    expect(res.body.user.email).toBe(`two-${id}@idp.test`);
    // Spent on the first instance, spent on the second.
    expectProblem(await exchange(second, browser, outcome.code!), 400, AuthErrors.INVALID_EXCHANGE_CODE);
    expect((await visitCallback(first, browser, callback)).error).toBe('invalid_state');
  });
});

describe('a provider down at start-up', () => {
  let database: TestDatabase;
  let idp: TestIdp;
  let late: FakeIdp | undefined;
  let t: TestApp;
  let latePort: number;

  beforeAll(async () => {
    idp = await TestIdp.start([callbackUrl('test')]);
    latePort = await freePort();
    database = await createTestDatabase(DATABASES[0]);
    t = await startTestApp({
      adapter: 'fastify',
      databaseUrl: database.url,
      auth: {
        oidc: {
          providers: [
            { name: 'test', issuer: idp.issuer, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET },
            { name: 'late', issuer: `http://127.0.0.1:${latePort}`, clientId: CLIENT_ID, clientSecret: 'late-secret' },
          ],
          publicUrl: PUBLIC_URL,
          redirectUrls: [APP_REDIRECT],
          discoveryRetrySeconds: 1,
        },
      },
    });
  });

  afterAll(async () => {
    await t?.close();
    await database?.drop();
    await idp?.stop();
    await late?.stop();
  });

  const authorizeLate = () => t.http().get(`${AUTH}/oidc/late/authorize?redirect_uri=${encodeURIComponent(APP_REDIRECT)}`);

  it('starts, names the provider in one log line, answers 503 for it alone, and serves it once it is reachable', async () => {
    const unavailable = t.logs.lines.filter((line) => line.includes('OIDC provider late unavailable'));
    expect(unavailable).toHaveLength(1);
    expect(unavailable[0]).toContain(`http://127.0.0.1:${latePort}/`);

    const refused = await authorizeLate();
    expectProblem(refused, 503, AuthErrors.PROVIDER_UNAVAILABLE);
    expect(refused.headers['retry-after']).toBe('1');
    expect(refused.headers['set-cookie']).toBeUndefined();
    await t.http().get('/health/ready').expect(200);
    await signUp(() => t.http());
    const id = nextId();
    await idp.addAccount({ id: `sub-${id}`, email: `up-${id}@idp.test`, email_verified: true });
    const browser = new Browser();
    const other = await signInThroughIdp(t, browser, idp, `sub-${id}`);
    await exchange(t, browser, other.code!).expect(200);

    late = await FakeIdp.start(latePort);
    await waitUntil('the late provider is discovered', async () => (await authorizeLate()).status === 302, 10_000);
    late.nextAccount = { sub: `late-${id}`, email: `late-${id}@idp.test`, email_verified: true };
    const lateBrowser = new Browser();
    const outcome = await visitCallback(t, lateBrowser, await authorizeThroughIdp(t, lateBrowser, late, { provider: 'late', loginHint: 'x' }));
    await exchange(t, lateBrowser, outcome.code!).expect(200);
    // Retried quietly: still the one line.
    expect(t.logs.lines.filter((line) => line.includes('OIDC provider late unavailable'))).toHaveLength(1);
  });
});

describe('OIDC in cookie mode', () => {
  let database: TestDatabase;
  let idp: TestIdp;
  let t: TestApp;

  beforeAll(async () => {
    idp = await TestIdp.start([callbackUrl('test')]);
    database = await createTestDatabase(DATABASES[0]);
    t = await startTestApp({ adapter: 'express', databaseUrl: database.url, env: oidcEnv(idp.issuer, { REFRESH_TOKEN_COOKIE: 'true' }) });
  });

  afterAll(async () => {
    await t?.close();
    await database?.drop();
    await idp?.stop();
  });

  it('delivers the refresh token in its cookie at the exchange, never in the body', async () => {
    const id = nextId();
    await idp.addAccount({ id: `sub-${id}`, email: `cookie-${id}@idp.test`, email_verified: true });
    const browser = new Browser();
    const outcome = await signInThroughIdp(t, browser, idp, `sub-${id}`);
    const res = await exchange(t, browser, outcome.code!).expect(200);
    expect(res.body.refresh_token).toBeUndefined();
    const cookies = res.headers['set-cookie'] as unknown as string[];
    expect(cookies.some((cookie) => /^refresh_token=[\w-]{43}; .*HttpOnly; Secure; SameSite=Strict$/.test(cookie))).toBe(true);
  });
});
