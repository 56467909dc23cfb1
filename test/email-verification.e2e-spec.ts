import { createHash } from 'node:crypto';
import { AuthErrors, AuthMessages } from '../src/common/auth.errors';
import { createTestDatabase, DATABASES, sql, TestDatabase } from './support/databases';
import { expectProblem, newAccount, signUp, SignedUp } from './support/fixtures';
import { ReceivedMail, TestSmtpServer, tokenFromMail } from './support/smtp';
import { matrix, RESET_URL, startTestApp, TestApp, TestAppOptions } from './support/test-app';

const AUTH = '/api/v1/auth';
const APP_NAME = 'Acme Accounts';
const VERIFY_URL = 'https://app.example.test/verify-email';
const HOUR_MS = 3_600_000;

const isWelcome = (mail: ReceivedMail) => mail.subject === `Welcome to ${APP_NAME}`;
const isVerification = (mail: ReceivedMail) => mail.subject === `Verify your email address for ${APP_NAME}`;
const carriesVerificationLink = (mail: ReceivedMail) => isWelcome(mail) || isVerification(mail);
const isReset = (mail: ReceivedMail) => mail.subject === `Reset your ${APP_NAME} password`;
const isNotice = (mail: ReceivedMail) => mail.subject === `Your ${APP_NAME} password was changed`;

/** The href of the first link in an HTML body, with the few entities an attribute may hold decoded. */
function hrefOf(html: string): string {
  const href = html.match(/href="([^"]+)"/)?.[1];
  if (!href) throw new Error('no link in the HTML part');
  return href.replace(/&#(\d+);/g, (_, code: string) => String.fromCharCode(Number(code))).replace(/&amp;/g, '&');
}

describe.each(matrix(DATABASES))('email verification, security notices and mail caps on %s with %s', (databaseKind, adapter) => {
  let database: TestDatabase;
  let smtp: TestSmtpServer;
  let t: TestApp;
  const apps: TestApp[] = [];
  const databases: TestDatabase[] = [];
  /** Every password and token this block handles; none may reach a log line. */
  const secrets = new Set<string>();

  async function start(overrides: Partial<TestAppOptions> = {}): Promise<TestApp> {
    const app = await startTestApp({
      adapter,
      databaseUrl: database.url,
      smtpUrl: smtp.url,
      env: { APP_NAME, EMAIL_VERIFICATION_URL: VERIFY_URL, ...overrides.env },
      ...overrides,
    });
    apps.push(app);
    return app;
  }

  async function register(app: TestApp = t): Promise<SignedUp> {
    const signed = await signUp(app.http);
    secrets.add(signed.account.password).add(signed.token);
    return signed;
  }

  /** The token of the `nth` (1-based) mail to `email` that `matches`, once it has arrived. */
  async function tokenOf(email: string, matches: (mail: ReceivedMail) => boolean, nth = 1): Promise<string> {
    await smtp.waitFor(email, () => smtp.to(email).filter(matches).length >= nth);
    const token = tokenFromMail(smtp.to(email).filter(matches)[nth - 1]);
    secrets.add(token);
    return token;
  }

  const verify = (token: string, app: TestApp = t) => app.http().post(`${AUTH}/verify-email`).send({ token });
  const resend = (email: string) => t.http().post(`${AUTH}/resend-verification`).send({ email });
  const forgot = (email: string) => t.http().post(`${AUTH}/forgot-password`).send({ email });
  const me = (token: string, app: TestApp = t) => app.http().get(`${AUTH}/me`).auth(token, { type: 'bearer' });

  beforeAll(async () => {
    database = await createTestDatabase(databaseKind);
    smtp = await TestSmtpServer.start();
    t = await start();
  });

  afterAll(async () => {
    for (const app of apps) await app.close();
    await smtp?.stop();
    await database?.drop();
    for (const other of databases) await other.drop();
  });

  describe('verification', () => {
    it('starts unverified, with a welcome naming the app and linking to EMAIL_VERIFICATION_URL?token= in text and HTML, whatever Host the request claims', async () => {
      const account = newAccount();
      secrets.add(account.password);
      const res = await t.http().post(`${AUTH}/signup`).set('Host', 'evil.example.com').set('X-Forwarded-Host', 'evil.example.com').send(account).expect(201);
      expect(res.body.user.is_verified).toBe(false);

      const token = await tokenOf(account.email, isWelcome);
      const [mail] = smtp.to(account.email).filter(isWelcome);
      expect(mail.text).toContain(APP_NAME);
      expect(mail.html).toContain(APP_NAME);
      expect(mail.text).toContain('24 hours');
      for (const link of [mail.text.match(/https?:\/\/\S+/)![0], hrefOf(mail.html)]) {
        expect(link.startsWith(`${VERIFY_URL}?token=`)).toBe(true);
        expect(new URL(link).searchParams.get('token')).toBe(token);
      }
      expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(mail.raw).not.toContain('evil.example.com');
    });

    it('verifies with the mailed token once: 200, /me shows is_verified, and the same token then answers 400', async () => {
      const { account, token: accessToken } = await register();
      const token = await tokenOf(account.email, isWelcome);

      const res = await verify(token).expect(200);
      expect(res.body).toEqual({ message: AuthMessages.EMAIL_VERIFIED });
      expect((await me(accessToken).expect(200)).body.is_verified).toBe(true);
      expectProblem(await verify(token), 400, AuthErrors.INVALID_VERIFICATION_TOKEN);
    });

    it('stores only the SHA-256 of the token', async () => {
      const { account, userId } = await register();
      const token = await tokenOf(account.email, isWelcome);
      const rows = (await sql(database, 'SELECT token_hash FROM email_verification_tokens WHERE user_id = $1', [userId])) as { token_hash: string }[];
      expect(rows).toEqual([{ token_hash: createHash('sha256').update(token).digest('hex') }]);
      expect(JSON.stringify(await sql(database, 'SELECT * FROM email_verification_tokens'))).not.toContain(token);
      expect(JSON.stringify(await sql(database, 'SELECT * FROM mail_outbox'))).not.toContain(token);
    });

    it('expires after EMAIL_VERIFICATION_TOKEN_EXPIRE_HOURS (24 by default)', async () => {
      const early = await register();
      const late = await register();
      const earlyToken = await tokenOf(early.account.email, isWelcome);
      const lateToken = await tokenOf(late.account.email, isWelcome);

      t.advanceClock(24 * HOUR_MS - 60_000);
      await verify(earlyToken).expect(200);
      t.advanceClock(2 * 60_000);
      expectProblem(await verify(lateToken), 400, AuthErrors.INVALID_VERIFICATION_TOKEN);
      expect((await me(late.token).expect(200)).body.is_verified).toBe(false);
    });

    it('answers 400 Invalid or expired token for a made-up token and 422 for a missing one', async () => {
      expectProblem(await verify('made-up-token'), 400, AuthErrors.INVALID_VERIFICATION_TOKEN);
      expectProblem(await t.http().post(`${AUTH}/verify-email`).send({}), 422);
    });
  });

  describe('resend-verification', () => {
    it('answers unknown, verified and unverified emails alike and mails only the unverified one; the newer link voids the older', async () => {
      const unverified = await register();
      const verified = await register();
      await verify(await tokenOf(verified.account.email, isWelcome)).expect(200);
      const welcomeToken = await tokenOf(unverified.account.email, isWelcome);

      const answers = await Promise.all([unverified.account.email, verified.account.email, `nobody-${unverified.account.email}`].map(async (email) => (await resend(email).expect(200)).body));
      expect(answers).toEqual(Array(3).fill({ message: AuthMessages.VERIFICATION_EMAIL_SENT }));

      const newerToken = await tokenOf(unverified.account.email, isVerification);
      await t.drainMail();
      expect(smtp.to(verified.account.email).filter(isVerification)).toEqual([]);
      expect(smtp.to(`nobody-${unverified.account.email}`)).toEqual([]);
      expectProblem(await verify(welcomeToken), 400, AuthErrors.INVALID_VERIFICATION_TOKEN);
      await verify(newerToken).expect(200);
    });
  });

  describe('per-account caps on mail a stranger can trigger', () => {
    it('sends at most 3 reset mails an hour per account, answering as usual; the next hour allows more', async () => {
      const { account, userId } = await register();
      for (let i = 0; i < 5; i++) expect((await forgot(account.email).expect(200)).body).toEqual({ message: AuthMessages.RESET_EMAIL_SENT });
      await t.drainMail();
      expect(smtp.to(account.email).filter(isReset)).toHaveLength(3);
      const capped = apps.flatMap((app) => app.logs.lines).filter((line) => line.includes(`event=password_reset_mail_capped user_id=${userId} `));
      expect(capped).toHaveLength(2);

      t.advanceClock(HOUR_MS + 1000);
      await forgot(account.email).expect(200);
      await tokenOf(account.email, isReset, 4);
    });

    it('holds under 10 parallel forgot-password requests for one account', async () => {
      const { account } = await register();
      const responses = await Promise.all(Array.from({ length: 10 }, () => forgot(account.email)));
      expect(responses.map((res) => res.status)).toEqual(Array(10).fill(200));
      await t.drainMail();
      expect(smtp.to(account.email).filter(isReset)).toHaveLength(3);
    });

    it('sends at most 3 mails with a verification link an hour per account, the welcome included', async () => {
      const { account } = await register();
      const responses = await Promise.all(Array.from({ length: 6 }, () => resend(account.email)));
      expect(responses.map((res) => res.body)).toEqual(Array(6).fill({ message: AuthMessages.VERIFICATION_EMAIL_SENT }));
      await t.drainMail();
      expect(smtp.to(account.email).filter(carriesVerificationLink)).toHaveLength(3);

      t.advanceClock(HOUR_MS + 1000);
      await resend(account.email).expect(200);
      await tokenOf(account.email, isVerification, 3);
    });
  });

  describe('security notice', () => {
    function expectNoticeWithoutWayIn(mail: ReceivedMail): void {
      expect(mail.text).toContain(APP_NAME);
      expect(mail.html).toContain(APP_NAME);
      // No link at all, so none that could sign anyone in.
      expect(mail.raw).not.toMatch(/https?:|token|href=/i);
    }

    it('follows a password change, to the account address, with no link; a refused change sends none', async () => {
      const { account, token } = await register();
      await t.http().post(`${AUTH}/change-password`).auth(token, { type: 'bearer' }).send({ old_password: 'not my password', new_password: 'never stored one' }).expect(400);
      await t.drainMail();
      expect(smtp.to(account.email).filter(isNotice)).toEqual([]);

      secrets.add('a changed password here');
      await t.http().post(`${AUTH}/change-password`).auth(token, { type: 'bearer' }).send({ old_password: account.password, new_password: 'a changed password here' }).expect(200);
      const notice = await smtp.waitFor(account.email, isNotice);
      expect(notice.to).toEqual([account.email]);
      expect(notice.text).toMatch(/password .*was changed/);
      expectNoticeWithoutWayIn(notice);
    });

    it('follows a password reset, which also verifies the address', async () => {
      const { account, userId } = await register();
      await forgot(account.email).expect(200);
      const resetToken = await tokenOf(account.email, isReset);
      secrets.add('reset to a new password');
      await t.http().post(`${AUTH}/reset-password`).send({ token: resetToken, new_password: 'reset to a new password' }).expect(200);

      const notice = await smtp.waitFor(account.email, isNotice);
      expectNoticeWithoutWayIn(notice);
      expect(notice.raw).not.toContain(resetToken);
      const [row] = (await sql(database, 'SELECT is_verified FROM users WHERE id = $1', [userId])) as { is_verified: unknown }[];
      expect(Boolean(row.is_verified)).toBe(true);
    });
  });

  describe('REQUIRE_VERIFIED_EMAIL', () => {
    it('is off by default: an unverified account signs in', async () => {
      const { account } = await register();
      await t.http().post(`${AUTH}/signin`).send({ email: account.email, password: account.password }).expect(200);
    });

    it('when true, answers an unverified sign-in 403 Email not verified (401 for a wrong password) until the email is verified', async () => {
      const own = await createTestDatabase(databaseKind);
      databases.push(own);
      const strict = await start({ databaseUrl: own.url, env: { APP_NAME, EMAIL_VERIFICATION_URL: VERIFY_URL, REQUIRE_VERIFIED_EMAIL: 'true' } });
      const { account } = await register(strict);
      const signIn = (password: string) => strict.http().post(`${AUTH}/signin`).send({ email: account.email, password });

      expectProblem(await signIn(account.password), 403, AuthErrors.EMAIL_NOT_VERIFIED);
      expectProblem(await signIn('not the password'), 401, AuthErrors.INVALID_CREDENTIALS);

      await verify(await tokenOf(account.email, isWelcome), strict).expect(200);
      const res = await signIn(account.password).expect(200);
      expect(res.body.user.is_verified).toBe(true);
    });
  });

  it('never logged a password, token, verification or reset link', async () => {
    for (const app of apps) await app.drainMail();
    expect(secrets.size).toBeGreaterThan(15);
    const lines = apps.flatMap((app) => app.logs.lines);
    expect(lines.some((line) => line.startsWith('mail sent '))).toBe(true);
    const forbidden = [...secrets, VERIFY_URL, RESET_URL, 'token='];
    expect(lines.filter((line) => forbidden.some((secret) => line.includes(secret)))).toEqual([]);
  });
});
