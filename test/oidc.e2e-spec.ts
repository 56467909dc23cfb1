import { AuthErrors } from '../src/common/auth.errors';
import { UsersService } from '../src/users/users.service';
import { createTestDatabase, DATABASES, sql, TestDatabase } from './support/databases';
import { expectProblem, holdNextCall, signUp } from './support/fixtures';
import {
  APP_REDIRECT,
  Browser,
  callbackUrl,
  exchange,
  authorizeThroughIdp,
  signInThroughIdp,
  visitCallback,
  TestIdp,
  oidcEnv,
} from './support/oidc';
import { TestSmtpServer } from './support/smtp';
import { matrix, startTestApp, TestApp } from './support/test-app';

const AUTH = '/api/v1/auth';
const claimsOf = (token: string) => JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));
let unique = 0;
const nextId = () => `${process.pid}-${++unique}`;


describe.each(matrix(DATABASES))('sign-in with an OIDC provider on %s with %s', (databaseKind, adapter) => {
  let database: TestDatabase;
  let smtp: TestSmtpServer;
  let idp: TestIdp;
  let t: TestApp;

  beforeAll(async () => {
    idp = await TestIdp.start([callbackUrl('test')]);
    database = await createTestDatabase(databaseKind);
    smtp = await TestSmtpServer.start();
    t = await startTestApp({ adapter, databaseUrl: database.url, smtpUrl: smtp.url, env: oidcEnv(idp.issuer) });
  });

  afterAll(async () => {
    await t?.close();
    await smtp?.stop();
    await database?.drop();
    await idp?.stop();
  });

  it('redirects to the provider with PKCE S256, state and nonce, and binds the state to the browser with a Lax cookie on the callback path', async () => {
    const res = await t.http().get(`${AUTH}/oidc/test/authorize?redirect_uri=${encodeURIComponent(APP_REDIRECT)}&prompt=login&login_hint=x`);
    expect(res.status).toBe(302);
    const location = new URL(res.headers.location);
    expect(location.origin).toBe(idp.issuer);
    const params = location.searchParams;
    expect(params.get('code_challenge_method')).toBe('S256');
    expect(params.get('code_challenge')).toMatch(/^[\w-]{43}$/);
    expect(params.get('state')).toMatch(/^[\w-]{43}$/);
    expect(params.get('nonce')).toBeTruthy();
    expect(params.get('redirect_uri')).toBe(callbackUrl('test'));
    expect(params.get('scope')).toBe('openid email profile');
    expect(params.get('prompt')).toBe('login');
    expect(params.get('login_hint')).toBe('x');
    const [cookie] = res.headers['set-cookie'] as unknown as string[];
    expect(cookie).toMatch(/^oidc_binding=[\w-]{43}; Max-Age=600; Path=\/api\/v1\/auth\/oidc\/test\/callback; HttpOnly; Secure; SameSite=Lax$/);
  });

  it('creates a verified user without a password for a new verified email, and signs them in through the one-time code', async () => {
    const id = nextId();
    const email = `new-${id}@idp.test`;
    await idp.addAccount({ id: `sub-${id}`, email, email_verified: true, name: 'Ada Provider', preferred_username: `ada.${id}` });
    const browser = new Browser();
    const outcome = await signInThroughIdp(t, browser, idp, `sub-${id}`);
    expect(outcome.error).toBeNull();
    expect(`${outcome.location.origin}${outcome.location.pathname}`).toBe(APP_REDIRECT);
    expect(outcome.code).toMatch(/^[\w-]{43}$/);
    expect([...outcome.location.searchParams.keys()]).toEqual(['code']);

    const res = await exchange(t, browser, outcome.code!);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ token_type: 'bearer', refresh_token: expect.any(String) });
    expect(res.body.user).toMatchObject({ email, username: `ada.${id}`, full_name: 'Ada Provider', is_verified: true, has_password: false });
    const claims = claimsOf(res.body.access_token);
    expect(claims).toMatchObject({ aal: 'aal1', amr: ['oidc'] });

    const identities = await t.http().get(`${AUTH}/identities`).set('Authorization', `Bearer ${res.body.access_token}`).expect(200);
    expect(identities.body).toEqual([{ id: expect.any(Number), provider: 'test', email, created_at: expect.any(String) }]);

    // No password: password sign-in answers as for a wrong one.
    const signin = await t.http().post(`${AUTH}/signin`).send({ email, password: 'any password at all 1' });
    expectProblem(signin, 401, AuthErrors.INVALID_CREDENTIALS);
    const events = await sql(database, `SELECT type FROM auth_events WHERE user_id = $1 ORDER BY id`, [res.body.user.id]);
    expect(events.map((row) => (row as { type: string }).type)).toEqual(['signup', 'oidc_signin', 'signin_failed']);
  });

  it('signs a returning user in to the same account, found by issuer and subject', async () => {
    const id = nextId();
    await idp.addAccount({ id: `sub-${id}`, email: `back-${id}@idp.test`, email_verified: true });
    const first = await signInThroughIdp(t, new Browser(), idp, `sub-${id}`);
    expect(first.code).toBeTruthy();
    // The provider's email changes: the identity still leads to the same user.
    await idp.addAccount({ id: `sub-${id}`, email: `changed-${id}@idp.test`, email_verified: true });
    const browser = new Browser();
    const again = await signInThroughIdp(t, browser, idp, `sub-${id}`);
    const res = await exchange(t, browser, again.code!).expect(200);
    expect(res.body.user.email).toBe(`back-${id}@idp.test`);
    expect(res.body.user.username).toBe(`back-${id}`);
    const count = await sql(database, `SELECT count(*) AS n FROM users WHERE email LIKE $1`, [`%-${id}@idp.test`]);
    expect(Number((count[0] as { n: string | number }).n)).toBe(1);
  });

  it('creates one user when the same new provider account comes back through two callbacks at once', async () => {
    const id = nextId();
    const email = `race-${id}@idp.test`;
    await idp.addAccount({ id: `sub-${id}`, email, email_verified: true });
    const browsers = [new Browser(), new Browser()];
    const callbacks = await Promise.all(browsers.map((browser) => authorizeThroughIdp(t, browser, idp, { loginHint: `sub-${id}` })));
    const outcomes = await Promise.all(browsers.map((browser, i) => visitCallback(t, browser, callbacks[i])));
    expect(outcomes.map((outcome) => outcome.error)).toEqual([null, null]);
    const users = await Promise.all(browsers.map(async (browser, i) => (await exchange(t, browser, outcomes[i].code!).expect(200)).body.user.id));
    expect(users[0]).toBe(users[1]);
    expect(await sql(database, 'SELECT id FROM users WHERE email = $1', [email])).toHaveLength(1);
  });

  it('signs the slower of two racing callbacks in when the faster one created the account after its identity look-up', async () => {
    const id = nextId();
    const email = `race-late-${id}@idp.test`;
    await idp.addAccount({ id: `sub-${id}`, email, email_verified: true });
    const browsers = [new Browser(), new Browser()];
    const callbacks = await Promise.all(browsers.map((browser) => authorizeThroughIdp(t, browser, idp, { loginHint: `sub-${id}` })));
    // The first callback found no identity; its look-up by email is held until the second has signed up.
    const hold = holdNextCall(t.app.get(UsersService), 'findByEmail');
    try {
      const first = visitCallback(t, browsers[0], callbacks[0]);
      await hold.reached;
      const second = await visitCallback(t, browsers[1], callbacks[1]);
      hold.release();
      const outcomes = [await first, second];
      expect(outcomes.map((outcome) => outcome.error)).toEqual([null, null]);
      const ids = await Promise.all(browsers.map(async (browser, i) => (await exchange(t, browser, outcomes[i].code!).expect(200)).body.user.id));
      expect(ids[0]).toBe(ids[1]);
    } finally {
      hold.release();
      hold.restore();
    }
  });

  it('fits the username to the sign-up pattern and suffixes it until free', async () => {
    const id = nextId();
    const taken = await signUp(() => t.http(), { username: `taken${id.replace('-', '')}` });
    await idp.addAccount({ id: `sub-${id}`, email: `fit-${id}@idp.test`, email_verified: true, preferred_username: `${taken.account.username}` });
    const browser = new Browser();
    const outcome = await signInThroughIdp(t, browser, idp, `sub-${id}`);
    const res = await exchange(t, browser, outcome.code!).expect(200);
    expect(res.body.user.username).toBe(`${taken.account.username}-2`);

    const spaced = nextId();
    await idp.addAccount({ id: `sub-${spaced}`, email: `x@${spaced}.idp.test`, email_verified: true, preferred_username: 'Ada  Love lace!' });
    const other = new Browser();
    const second = await signInThroughIdp(t, other, idp, `sub-${spaced}`);
    const created = await exchange(t, other, second.code!).expect(200);
    expect(created.body.user.username).toBe('Ada-Love-lace');
  });

  it('lets a user without a password set a first one through forgot-password', async () => {
    const id = nextId();
    const email = `first-pw-${id}@idp.test`;
    await idp.addAccount({ id: `sub-${id}`, email, email_verified: true });
    const browser = new Browser();
    const outcome = await signInThroughIdp(t, browser, idp, `sub-${id}`);
    await exchange(t, browser, outcome.code!).expect(200);
    await t.http().post(`${AUTH}/forgot-password`).send({ email }).expect(200);
    await t.drainMail();
    const mail = await smtp.waitFor(email, (m) => m.text.includes('reset-password'));
    const token = /token=([\w.-]+)/.exec(mail.text)![1];
    await t.http().post(`${AUTH}/reset-password`).send({ token, new_password: `a first password ${id}` }).expect(200);
    const signin = await t.http().post(`${AUTH}/signin`).send({ email, password: `a first password ${id}` }).expect(200);
    expect(signin.body.user.has_password).toBe(true);
  });
});
