import { AuthErrors } from '../src/common/auth.errors';
import { base32Decode, hotp, stepAt, TOTP_STEP_SECONDS } from '../src/mfa/totp';
import { createTestDatabase, DATABASES, sql, TestDatabase } from './support/databases';
import { expectProblem, newAccount, signUp } from './support/fixtures';
import { Browser, callbackUrl, exchange, oidcEnv, signInThroughIdp, TestIdp, visitCallback } from './support/oidc';
import { TestSmtpServer } from './support/smtp';
import { matrix, startTestApp, TestApp } from './support/test-app';

const AUTH = '/api/v1/auth';
const SETTINGS = 'https://app.example.test/settings';
const STEP_MS = TOTP_STEP_SECONDS * 1000;
const claimsOf = (token: string) => JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));
const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });
let unique = 0;
const nextId = () => `${process.pid}-l${++unique}`;

describe.each(matrix(DATABASES))('OIDC account linking on %s with %s', (databaseKind, adapter) => {
  let database: TestDatabase;
  let smtp: TestSmtpServer;
  let idp: TestIdp;
  let t: TestApp;
  let offset = 0;
  const advance = (ms: number) => {
    offset += ms;
    t.advanceClock(ms);
  };
  const http = () => t.http();

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

  const identityRows = async (userId: number) => sql(database, 'SELECT provider, subject FROM identities WHERE user_id = $1', [userId]);

  /** Starts a link from a signed-in session and goes through the IdP as `loginHint`; answers the callback's outcome. */
  async function link(token: string, loginHint: string) {
    const browser = new Browser();
    const res = await http().post(`${AUTH}/oidc/test/link`).set(bearer(token)).send({ redirect_uri: SETTINGS, login_hint: loginHint });
    expect(res.status).toBe(200);
    browser.takeAppCookies(res.headers['set-cookie']);
    const callback = await browser.throughIdp(res.body.authorize_url, idp.issuer);
    return visitCallback(t, browser, callback);
  }

  /** A user created through the provider, signed in: its access token. */
  async function oidcUser(): Promise<{ sub: string; email: string; token: string; userId: number }> {
    const id = nextId();
    const sub = `sub-${id}`;
    const email = `oidc-${id}@idp.test`;
    await idp.addAccount({ id: sub, email, email_verified: true });
    const browser = new Browser();
    const outcome = await signInThroughIdp(t, browser, idp, sub);
    const res = await exchange(t, browser, outcome.code!).expect(200);
    return { sub, email, token: res.body.access_token, userId: res.body.user.id };
  }

  describe('a takeover attempt: a provider account carrying a victim\'s email', () => {
    it('with the email verified at the provider: account_exists, and the victim\'s account gains no identity', async () => {
      const victim = await signUp(http);
      await idp.addAccount({ id: `attacker-${nextId()}`, email: victim.account.email, email_verified: true });
      const attackerSub = `attacker-v-${nextId()}`;
      await idp.addAccount({ id: attackerSub, email: victim.account.email.toUpperCase(), email_verified: true });
      const outcome = await signInThroughIdp(t, new Browser(), idp, attackerSub);
      expect(outcome.error).toBe('account_exists');
      expect(outcome.code).toBeNull();
      expect(await identityRows(victim.userId)).toEqual([]);
      await http().post(`${AUTH}/signin`).send({ email: victim.account.email, password: victim.account.password }).expect(200);
      // Again, now that the victim exists in every sense: still nothing.
      expect((await signInThroughIdp(t, new Browser(), idp, attackerSub)).error).toBe('account_exists');
      expect(await identityRows(victim.userId)).toEqual([]);
    });

    it('with the email unverified: email_not_verified, for an existing account and a new address alike', async () => {
      const victim = await signUp(http);
      const sub = `attacker-u-${nextId()}`;
      await idp.addAccount({ id: sub, email: victim.account.email, email_verified: false });
      expect((await signInThroughIdp(t, new Browser(), idp, sub)).error).toBe('email_not_verified');
      expect(await identityRows(victim.userId)).toEqual([]);

      const fresh = `unverified-${nextId()}@idp.test`;
      const other = `attacker-n-${nextId()}`;
      await idp.addAccount({ id: other, email: fresh });
      expect((await signInThroughIdp(t, new Browser(), idp, other)).error).toBe('email_not_verified');
      expect(await sql(database, 'SELECT id FROM users WHERE email = $1', [fresh])).toEqual([]);
    });
  });

  it('links a provider account from a fresh session: linked=test, a notice mail, the event; then it signs in to that account', async () => {
    const owner = await signUp(http);
    const sub = `link-${nextId()}`;
    await idp.addAccount({ id: sub, email: `someone-else-${nextId()}@idp.test`, email_verified: true });
    const outcome = await link(owner.token, sub);
    expect(`${outcome.location.origin}${outcome.location.pathname}`).toBe(SETTINGS);
    expect(outcome.linked).toBe('test');
    expect(outcome.code).toBeNull();
    const listed = await http().get(`${AUTH}/identities`).set(bearer(owner.token)).expect(200);
    expect(listed.body).toEqual([expect.objectContaining({ provider: 'test' })]);
    await t.drainMail();
    const notice = await smtp.waitFor(owner.account.email, (mail) => mail.subject.includes('sign-in provider was linked'));
    expect(notice.text).toContain('OpenID Connect provider');
    const events = await sql(database, "SELECT details FROM auth_events WHERE user_id = $1 AND type = 'identity_linked'", [owner.userId]);
    expect(events).toHaveLength(1);

    const browser = new Browser();
    const signin = await signInThroughIdp(t, browser, idp, sub);
    const res = await exchange(t, browser, signin.code!).expect(200);
    expect(res.body.user.id).toBe(owner.userId);
    expect(res.body.user.has_password).toBe(true);
  });

  it('refuses to link an identity that another user holds: account_exists', async () => {
    const holder = await oidcUser();
    const other = await signUp(http);
    const outcome = await link(other.token, holder.sub);
    expect(outcome.error).toBe('account_exists');
    expect(await identityRows(other.userId)).toEqual([]);
  });

  it('refuses a link start with an unlisted redirect URL or an unknown provider', async () => {
    const owner = await signUp(http);
    expectProblem(await http().post(`${AUTH}/oidc/test/link`).set(bearer(owner.token)).send({ redirect_uri: 'https://evil.test/' }), 400, AuthErrors.REDIRECT_URL_NOT_ALLOWED);
    expectProblem(await http().post(`${AUTH}/oidc/nope/link`).set(bearer(owner.token)).send({ redirect_uri: SETTINGS }), 404, AuthErrors.UNKNOWN_PROVIDER);
    expectProblem(await http().post(`${AUTH}/oidc/test/link`).send({ redirect_uri: SETTINGS }), 401);
  });

  it('unlinks, but never the last way in', async () => {
    const user = await oidcUser();
    const [only] = (await http().get(`${AUTH}/identities`).set(bearer(user.token)).expect(200)).body;
    expectProblem(await http().delete(`${AUTH}/identities/${only.id}`).set(bearer(user.token)), 400, AuthErrors.LAST_SIGNIN_METHOD);

    const second = `second-${nextId()}`;
    await idp.addAccount({ id: second, email: `second-${nextId()}@idp.test`, email_verified: true });
    expect((await link(user.token, second)).linked).toBe('test');
    await http().delete(`${AUTH}/identities/${only.id}`).set(bearer(user.token)).expect(200, { message: 'Identity unlinked' });
    const left = (await http().get(`${AUTH}/identities`).set(bearer(user.token)).expect(200)).body;
    expect(left).toHaveLength(1);
    expectProblem(await http().delete(`${AUTH}/identities/${left[0].id}`).set(bearer(user.token)), 400, AuthErrors.LAST_SIGNIN_METHOD);
    const events = await sql(database, "SELECT type FROM auth_events WHERE user_id = $1 AND type = 'identity_unlinked'", [user.userId]);
    expect(events).toHaveLength(1);
    // The unlinked provider account is a stranger now: its email belongs to an account, so no new one either.
    expect((await signInThroughIdp(t, new Browser(), idp, user.sub)).error).toBe('account_exists');
  });

  it('unlinks the only identity of an account that has a password', async () => {
    const owner = await signUp(http);
    const sub = `pw-${nextId()}`;
    await idp.addAccount({ id: sub, email: `pw-${nextId()}@idp.test`, email_verified: true });
    await link(owner.token, sub);
    const [identity] = (await http().get(`${AUTH}/identities`).set(bearer(owner.token)).expect(200)).body;
    await http().delete(`${AUTH}/identities/${identity.id}`).set(bearer(owner.token)).expect(200);
    expect(await identityRows(owner.userId)).toEqual([]);
  });

  it("answers 404 Identity not found for another user's identity, an unknown id and a malformed one", async () => {
    const holder = await oidcUser();
    const [theirs] = (await http().get(`${AUTH}/identities`).set(bearer(holder.token)).expect(200)).body;
    const other = await signUp(http);
    for (const id of [String(theirs.id), '999999999', 'abc', '1e3', '0', '99999999999999999999']) {
      expectProblem(await http().delete(`${AUTH}/identities/${id}`).set(bearer(other.token)), 404, AuthErrors.IDENTITY_NOT_FOUND);
    }
    expect(await identityRows(holder.userId)).toHaveLength(1);
  });

  it('records oidc_signin, identity_linked and identity_unlinked with nothing but the provider or the methods', async () => {
    const rows = (await sql(database, "SELECT type, details FROM auth_events WHERE type IN ('oidc_signin', 'identity_linked', 'identity_unlinked')")) as { type: string; details: string }[];
    const types = new Set(rows.map((row) => row.type));
    expect([...types].sort()).toEqual(['identity_linked', 'identity_unlinked', 'oidc_signin']);
    for (const row of rows) {
      expect(JSON.parse(row.details)).toEqual(row.type === 'oidc_signin' ? { amr: ['oidc'] } : { provider: 'test' });
    }
  });

  it('sends an inactive account back with account_inactive, and refuses the exchange of one locked after the callback', async () => {
    const user = await oidcUser();
    await sql(database, 'UPDATE users SET is_active = $1 WHERE id = $2', [false, user.userId]);
    expect((await signInThroughIdp(t, new Browser(), idp, user.sub)).error).toBe('account_inactive');
    await sql(database, 'UPDATE users SET is_active = $1 WHERE id = $2', [true, user.userId]);
    const browser = new Browser();
    const outcome = await signInThroughIdp(t, browser, idp, user.sub);
    await sql(database, 'UPDATE users SET is_active = $1 WHERE id = $2', [false, user.userId]);
    expectProblem(await exchange(t, browser, outcome.code!), 403, AuthErrors.INACTIVE_USER);
  });

  it('with TOTP: the exchange answers 403 with an mfa_token, /signin/mfa completes at aal2 with amr oidc+otp; linking needs aal2', async () => {
    const user = await oidcUser();
    const setup = await http().post(`${AUTH}/mfa/totp/setup`).set(bearer(user.token)).expect(200);
    const secret = base32Decode(setup.body.secret);
    const now = () => Date.now() + offset;
    advance(STEP_MS - (now() % STEP_MS) + STEP_MS / 2);
    await http().post(`${AUTH}/mfa/totp/confirm`).set(bearer(user.token)).send({ code: hotp(secret, stepAt(now())) }).expect(200);
    advance(STEP_MS);

    const browser = new Browser();
    const outcome = await signInThroughIdp(t, browser, idp, user.sub);
    const first = await exchange(t, browser, outcome.code!);
    expectProblem(first, 403, AuthErrors.MFA_REQUIRED);
    expect(first.body.mfa_token).toEqual(expect.any(String));
    const done = await http().post(`${AUTH}/signin/mfa`).send({ mfa_token: first.body.mfa_token, code: hotp(secret, stepAt(now())) }).expect(200);
    expect(claimsOf(done.body.access_token)).toMatchObject({ aal: 'aal2', amr: ['oidc', 'otp'] });

    // The aal2 session may link (the aal1 refusal is the next test).
    const sub = `mfa-link-${nextId()}`;
    await idp.addAccount({ id: sub, email: `mfa-link-${nextId()}@idp.test`, email_verified: true });
    expect((await link(done.body.access_token, sub)).linked).toBe('test');
  });

  it('refuses aal1 for linking when the account has TOTP: 403 Additional authentication required', async () => {
    const owner = await signUp(http);
    const setup = await http().post(`${AUTH}/mfa/totp/setup`).set(bearer(owner.token)).expect(200);
    const secret = base32Decode(setup.body.secret);
    const now = () => Date.now() + offset;
    advance(STEP_MS - (now() % STEP_MS) + STEP_MS / 2);
    await http().post(`${AUTH}/mfa/totp/confirm`).set(bearer(owner.token)).send({ code: hotp(secret, stepAt(now())) }).expect(200);
    // The confirming session stays aal1 until its next refresh.
    const res = await http().post(`${AUTH}/oidc/test/link`).set(bearer(owner.token)).send({ redirect_uri: SETTINGS });
    expectProblem(res, 403, AuthErrors.ADDITIONAL_AUTH_REQUIRED);
    advance(STEP_MS);
  });

  it('refuses a link from a session signed in more than 5 minutes ago: 403 Recent sign-in required', async () => {
    const account = newAccount();
    const signedUp = await http().post(`${AUTH}/signup`).send(account).expect(201);
    const owner = { account, token: signedUp.body.access_token as string, refreshToken: signedUp.body.refresh_token as string };
    advance(5 * 60_000 + 1000);
    expectProblem(await http().post(`${AUTH}/oidc/test/link`).set(bearer(owner.token)).send({ redirect_uri: SETTINGS }), 403, AuthErrors.RECENT_SIGNIN_REQUIRED);
    // A refresh does not make the sign-in recent; signing in again does.
    const refreshed = await http().post(`${AUTH}/refresh`).send({ refresh_token: owner.refreshToken }).expect(200);
    expectProblem(
      await http().post(`${AUTH}/oidc/test/link`).set(bearer(refreshed.body.access_token)).send({ redirect_uri: SETTINGS }),
      403,
      AuthErrors.RECENT_SIGNIN_REQUIRED,
    );
    const signin = await http().post(`${AUTH}/signin`).send({ email: owner.account.email, password: owner.account.password }).expect(200);
    await http().post(`${AUTH}/oidc/test/link`).set(bearer(signin.body.access_token)).send({ redirect_uri: SETTINGS }).expect(200);
  });
});
