import fc from 'fast-check';
import { AuthErrors } from '../src/common/auth.errors';
import { createTestDatabase, DATABASES, sql, TestDatabase } from './support/databases';
import { FakeIdp, IdTokenFault } from './support/fake-idp';
import { expectProblem } from './support/fixtures';
import { APP_REDIRECT, authorizeThroughIdp, Browser, callbackUrl, exchange, oidcEnv, signInThroughIdp, TestIdp, visitCallback } from './support/oidc';
import { matrix, startTestApp, TestApp } from './support/test-app';

const AUTH = '/api/v1/auth';
/** What openid-client (oauth4webapi) says for each fault: the check that caught it, not some other failure. */
const REASONS: Record<IdTokenFault, RegExp> = {
  none: /^$/,
  audience: /claim \\"aud\\"/,
  issuer: /claim \\"iss\\"/,
  expired: /expiration is past current timestamp/,
  'foreign-key': /JWT signature verification failed/,
  nonce: /claim \\"nonce\\"/,
  'token-endpoint-error': /invalid_grant|server responded with an error/i,
};
let unique = 0;
const nextId = () => `${process.pid}-r${++unique}`;

describe.each(matrix(DATABASES))('OIDC refusals on %s with %s', (databaseKind, adapter) => {
  let database: TestDatabase;
  let idp: TestIdp;
  let fake: FakeIdp;
  let t: TestApp;

  const usersWithEmail = async (email: string) =>
    Number(((await sql(database, 'SELECT count(*) AS n FROM users WHERE email = $1', [email]))[0] as { n: string | number }).n);

  beforeAll(async () => {
    idp = await TestIdp.start([callbackUrl('test')]);
    fake = await FakeIdp.start();
    database = await createTestDatabase(databaseKind);
    t = await startTestApp({
      adapter,
      databaseUrl: database.url,
      env: oidcEnv(idp.issuer, {
        OIDC_PROVIDERS: 'test,fake',
        OIDC_FAKE_ISSUER: fake.issuer,
        OIDC_FAKE_CLIENT_ID: 'auth-service',
        OIDC_FAKE_CLIENT_SECRET: 'fake-secret',
      }),
    });
  });

  afterAll(async () => {
    await t?.close();
    await database?.drop();
    await idp?.stop();
    await fake?.stop();
  });

  it('answers 404 Unknown provider for a name that is not configured', async () => {
    expectProblem(await t.http().get(`${AUTH}/oidc/nope/authorize?redirect_uri=${encodeURIComponent(APP_REDIRECT)}`), 404, AuthErrors.UNKNOWN_PROVIDER);
    expectProblem(await t.http().get(`${AUTH}/oidc/nope/callback?state=x&code=y`), 404, AuthErrors.UNKNOWN_PROVIDER);
  });

  it('refuses a redirect URL not listed exactly, before anything is sent to the provider', async () => {
    const before = fake.requests.length;
    for (const url of [`${APP_REDIRECT}/`, APP_REDIRECT.toUpperCase(), `${APP_REDIRECT}?next=/`, 'https://evil.test/auth/done', 'javascript:alert(1)']) {
      const res = await t.http().get(`${AUTH}/oidc/fake/authorize?redirect_uri=${encodeURIComponent(url)}`);
      expectProblem(res, 400, AuthErrors.REDIRECT_URL_NOT_ALLOWED);
      expect(res.headers['set-cookie']).toBeUndefined();
    }
    expect(fake.requests.length).toBe(before);
    expectProblem(await t.http().get(`${AUTH}/oidc/fake/authorize`), 422);
  });

  it('answers 400 problem details for a callback without a state, or with one this service never issued', async () => {
    expectProblem(await t.http().get(`${AUTH}/oidc/test/callback?code=abc`), 400, AuthErrors.INVALID_OIDC_STATE);
    expectProblem(await t.http().get(`${AUTH}/oidc/test/callback?code=abc&state=made-up`), 400, AuthErrors.INVALID_OIDC_STATE);
  });

  it('uses a state once: the same redirect replayed (state and code) is invalid_state', async () => {
    const id = nextId();
    await idp.addAccount({ id: `sub-${id}`, email: `replay-${id}@idp.test`, email_verified: true });
    const browser = new Browser();
    const callback = await authorizeThroughIdp(t, browser, idp, { loginHint: `sub-${id}` });
    const cookie = browser.cookieFor(callback.pathname);
    const first = await visitCallback(t, browser, callback);
    expect(first.code).toBeTruthy();
    const replay = await t.http().get(`${callback.pathname}${callback.search}`).set('Cookie', cookie);
    expect(replay.status).toBe(302);
    expect(new URL(replay.headers.location).searchParams.get('error')).toBe('invalid_state');
    expect(new URL(replay.headers.location).searchParams.get('code')).toBeNull();
  });

  it('refuses a state brought to another browser, and the right browser can still finish', async () => {
    const id = nextId();
    await idp.addAccount({ id: `sub-${id}`, email: `cross-${id}@idp.test`, email_verified: true });
    const victim = new Browser();
    const callback = await authorizeThroughIdp(t, victim, idp, { loginHint: `sub-${id}` });
    const attacker = new Browser();
    expect((await visitCallback(t, attacker, callback)).error).toBe('invalid_state');
    const noCookie = await t.http().get(`${callback.pathname}${callback.search}`);
    expect(new URL(noCookie.headers.location).searchParams.get('error')).toBe('invalid_state');
    const own = await visitCallback(t, victim, callback);
    expect(own.code).toBeTruthy();
    // The code is bound to the same browser: the attacker cannot spend it either.
    expectProblem(await exchange(t, attacker, own.code!), 400, AuthErrors.INVALID_EXCHANGE_CODE);
    await exchange(t, victim, own.code!).expect(200);
  });

  it('sends the browser back with access_denied when the user cancels at the provider', async () => {
    const outcome = await signInThroughIdp(t, new Browser(), idp, 'cancel');
    expect(outcome.error).toBe('access_denied');
    expect(outcome.code).toBeNull();
  });

  it.each<[IdTokenFault]>([['audience'], ['issuer'], ['expired'], ['foreign-key'], ['nonce'], ['token-endpoint-error']])(
    'refuses an ID token with a fault (%s): provider_error, no user, nothing of the query in the logs',
    async (fault) => {
      const id = nextId();
      const email = `fault-${id}@idp.test`;
      fake.nextAccount = { sub: `fault-${id}`, email, email_verified: true };
      fake.fault = fault;
      try {
        const browser = new Browser();
        const callback = await authorizeThroughIdp(t, browser, fake, { provider: 'fake', loginHint: 'x' });
        const outcome = await visitCallback(t, browser, callback);
        expect(outcome.error).toBe('provider_error');
        expect(outcome.code).toBeNull();
        expect(await usersWithEmail(email)).toBe(0);
        const code = callback.searchParams.get('code')!;
        const state = callback.searchParams.get('state')!;
        const reasons = t.logs.lines.filter((line) => line.includes('oidc_provider_error'));
        expect(reasons.at(-1)).toMatch(REASONS[fault]);
        expect(t.logs.lines.filter((line) => line.includes(code) || line.includes(state))).toEqual([]);
      } finally {
        fake.fault = 'none';
      }
    },
  );

  it('accepts a good ID token from the hand-rolled provider (the faults above are the only difference)', async () => {
    const id = nextId();
    fake.nextAccount = { sub: `good-${id}`, email: `good-${id}@idp.test`, email_verified: true };
    const browser = new Browser();
    const outcome = await visitCallback(t, browser, await authorizeThroughIdp(t, browser, fake, { provider: 'fake', loginHint: 'x' }));
    expect(outcome.code).toBeTruthy();
    await exchange(t, browser, outcome.code!).expect(200);
  });

  it('refuses a subject longer than the 255 characters OIDC allows, and drops a name the database cannot hold', async () => {
    const id = nextId();
    fake.nextAccount = { sub: 's'.repeat(256), email: `long-${id}@idp.test`, email_verified: true };
    const browser = new Browser();
    expect((await visitCallback(t, browser, await authorizeThroughIdp(t, browser, fake, { provider: 'fake', loginHint: 'x' }))).error).toBe('provider_error');
    expect(await usersWithEmail(`long-${id}@idp.test`)).toBe(0);

    fake.nextAccount = { sub: `nul-${id}`, email: `nul-${id}@idp.test`, email_verified: true, name: 'Ada\u0000Lovelace', preferred_username: 'x'.repeat(300) };
    const other = new Browser();
    const outcome = await visitCallback(t, other, await authorizeThroughIdp(t, other, fake, { provider: 'fake', loginHint: 'x' }));
    const res = await exchange(t, other, outcome.code!).expect(200);
    expect(res.body.user).toMatchObject({ full_name: null, username: `nul-${id}` });
  });

  it('answers any query, cookie or body with a 302 or a 4xx problem, never a 5xx', async () => {
    const text = fc.oneof(fc.string({ unit: 'binary', maxLength: 40 }), fc.string({ unit: 'grapheme', maxLength: 40 }), fc.constant(''));
    const query = fc.dictionary(fc.constantFrom('state', 'code', 'error', 'iss', 'redirect_uri', 'prompt', 'login_hint', 'x'), text, { maxKeys: 5 });
    const browser = new Browser();
    const issued = await authorizeThroughIdp(t, browser, fake, { provider: 'fake', loginHint: 'x' });
    const state = issued.searchParams.get('state')!;
    await fc.assert(
      fc.asyncProperty(query, fc.boolean(), fc.constantFrom('test', 'fake', 'nope', '%00', 'a'.repeat(300)), text, async (params, withState, provider, cookie) => {
        const search = new URLSearchParams(params);
        if (withState) search.set('state', state);
        for (const route of ['callback', 'authorize']) {
          const res = await t.http().get(`${AUTH}/oidc/${provider}/${route}?${search}`).set('Cookie', `oidc_binding=${Buffer.from(cookie).toString('base64url')}`);
          if (res.status !== 302) expectProblem(res, res.status);
          expect(res.status).toBeLessThan(500);
        }
      }),
      { numRuns: 60 },
    );
    await fc.assert(
      fc.asyncProperty(fc.anything(), text, async (body, cookie) => {
        const res = await t.http().post(`${AUTH}/oidc/exchange`).set('Cookie', `oidc_binding=${Buffer.from(cookie).toString('base64url')}`).send({ code: body } as object);
        expectProblem(res, res.status);
        expect([400, 422]).toContain(res.status);
      }),
      { numRuns: 60 },
    );
  });

  it('spends an exchange code once', async () => {
    const id = nextId();
    await idp.addAccount({ id: `sub-${id}`, email: `twice-${id}@idp.test`, email_verified: true });
    const browser = new Browser();
    const outcome = await signInThroughIdp(t, browser, idp, `sub-${id}`);
    await exchange(t, browser, outcome.code!).expect(200);
    expectProblem(await exchange(t, browser, outcome.code!), 400, AuthErrors.INVALID_EXCHANGE_CODE);
    expectProblem(await exchange(t, browser, 'made-up-code'), 400, AuthErrors.INVALID_EXCHANGE_CODE);
  });

  it('refuses an exchange code after 60 seconds', async () => {
    const id = nextId();
    await idp.addAccount({ id: `sub-${id}`, email: `late-${id}@idp.test`, email_verified: true });
    const browser = new Browser();
    const outcome = await signInThroughIdp(t, browser, idp, `sub-${id}`);
    t.advanceClock(61_000);
    expectProblem(await exchange(t, browser, outcome.code!), 400, AuthErrors.INVALID_EXCHANGE_CODE);
  });

  it('refuses a state after 10 minutes: invalid_state', async () => {
    const id = nextId();
    await idp.addAccount({ id: `sub-${id}`, email: `slow-${id}@idp.test`, email_verified: true });
    const browser = new Browser();
    const callback = await authorizeThroughIdp(t, browser, idp, { loginHint: `sub-${id}` });
    t.advanceClock(10 * 60_000 + 1000);
    expect((await visitCallback(t, browser, callback)).error).toBe('invalid_state');
  });
});
