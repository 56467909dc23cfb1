import { createHash } from 'node:crypto';
import { AuthErrors, AuthMessages } from '../src/common/auth.errors';
import { createTestDatabase, DATABASES, sql, TestDatabase } from './support/databases';
import { expectProblem, newAccount, signUp, SignedUp, waitUntil } from './support/fixtures';
import { ReceivedMail, startSlowSmtp, TestSmtpServer, tokenFromMail } from './support/smtp';
import { matrix, RESET_URL, startTestApp, TestApp, TestAppOptions } from './support/test-app';

const AUTH = '/api/v1/auth';
const RESET_TTL_MINUTES = 20;
const SIGNIN_MAX_FAILURES = 3;

const isResetMail = (mail: ReceivedMail) => mail.subject.includes('Reset');

/** The href of the first link in an HTML body, with the few entities an attribute may hold decoded. */
function hrefOf(html: string): string {
  const href = html.match(/href="([^"]+)"/)?.[1];
  if (!href) throw new Error('no link in the HTML part');
  return href.replace(/&#(\d+);/g, (_, code: string) => String.fromCharCode(Number(code))).replace(/&amp;/g, '&');
}

function linkOf(text: string): string {
  const link = text.match(/https?:\/\/\S+/)?.[0];
  if (!link) throw new Error('no link in the text part');
  return link;
}

describe.each(matrix(DATABASES))('password reset on %s with %s', (databaseKind, adapter) => {
  let database: TestDatabase;
  let smtp: TestSmtpServer;
  let t: TestApp;
  /** Every app this block starts: a Nest logger override is process-wide, so lines may land in any of them. */
  const apps: TestApp[] = [];
  /** Every password, reset token and access token this block handles; none may reach a log line. */
  const secrets = new Set<string>();

  const options = (): TestAppOptions => ({
    adapter,
    databaseUrl: database.url,
    smtpUrl: smtp.url,
    env: { PASSWORD_RESET_TOKEN_EXPIRE_MINUTES: String(RESET_TTL_MINUTES), SIGNIN_MAX_FAILURES: String(SIGNIN_MAX_FAILURES) },
  });

  async function start(overrides: Partial<TestAppOptions> = {}): Promise<TestApp> {
    const app = await startTestApp({ ...options(), ...overrides });
    apps.push(app);
    return app;
  }

  async function register(app: TestApp = t): Promise<SignedUp> {
    const signed = await signUp(app.http);
    secrets.add(signed.account.password).add(signed.token);
    return signed;
  }

  /** Asks for a reset and returns the token from the `nth` (1-based) reset mail the address gets. */
  async function requestReset(email: string, nth = 1, headers: Record<string, string> = {}): Promise<{ token: string; mail: ReceivedMail }> {
    const res = await t.http().post(`${AUTH}/forgot-password`).set(headers).send({ email }).expect(200);
    expect(res.body).toEqual({ message: AuthMessages.RESET_EMAIL_SENT });
    await smtp.waitFor(email, (m) => isResetMail(m) && smtp.to(email).filter(isResetMail).length >= nth);
    const mail = smtp.to(email).filter(isResetMail)[nth - 1];
    const token = tokenFromMail(mail);
    secrets.add(token);
    return { token, mail };
  }

  function reset(token: string, newPassword: string) {
    secrets.add(newPassword);
    return t.http().post(`${AUTH}/reset-password`).send({ token, new_password: newPassword });
  }

  const signIn = (email: string, password: string) => t.http().post(`${AUTH}/signin`).send({ email, password });

  beforeAll(async () => {
    database = await createTestDatabase(databaseKind);
    smtp = await TestSmtpServer.start();
    t = await start();
  });

  afterAll(async () => {
    for (const app of apps) await app.close();
    await smtp?.stop();
    await database?.drop();
  });

  describe('the reset email', () => {
    it('arrives with a text and an HTML part, both linking to PASSWORD_RESET_URL?token=, whatever Host the request claims', async () => {
      const { account } = await register();
      const { token, mail } = await requestReset(account.email, 1, {
        Host: 'evil.example.com',
        'X-Forwarded-Host': 'evil.example.com',
        'X-Forwarded-Proto': 'http',
        Forwarded: 'host=evil.example.com;proto=http',
      });

      expect(mail.text).not.toBe('');
      expect(mail.html).not.toBe('');
      expect(mail.raw).toMatch(/Content-Type: text\/plain/i);
      expect(mail.raw).toMatch(/Content-Type: text\/html/i);
      for (const link of [linkOf(mail.text), hrefOf(mail.html)]) {
        expect(link.startsWith(`${RESET_URL}?token=`)).toBe(true);
        expect(new URL(link).searchParams.get('token')).toBe(token);
      }
      expect(mail.raw).not.toContain('evil.example.com');
    });

    it('carries a token of at least 128 bits, of which only the SHA-256 is stored', async () => {
      const { account, userId } = await register();
      const { token } = await requestReset(account.email);
      expect(token).toMatch(/^[A-Za-z0-9_-]{22,}$/);

      const rows = (await sql(database, 'SELECT * FROM password_reset_tokens WHERE user_id = $1', [userId])) as Record<string, unknown>[];
      expect(rows).toHaveLength(1);
      const digest = createHash('sha256').update(token).digest();
      const encodings = [digest.toString('hex'), digest.toString('base64'), digest.toString('base64url')];
      expect(encodings).toContain(rows[0].token_hash);
      const everything = JSON.stringify(await sql(database, 'SELECT * FROM password_reset_tokens'));
      expect(everything).not.toContain(token);
    });
  });

  describe('redeeming', () => {
    it('voids the older token when a newer one is requested', async () => {
      const { account } = await register();
      const older = await requestReset(account.email, 1);
      const newer = await requestReset(account.email, 2);
      expect(newer.token).not.toBe(older.token);

      expectProblem(await reset(older.token, 'from the older link'), 400, AuthErrors.INVALID_RESET_TOKEN);
      await reset(newer.token, 'from the newer link').expect(200);
      await signIn(account.email, 'from the newer link').expect(200);
      await signIn(account.email, 'from the older link').expect(401);
    });

    it('changes nothing by being requested: the old password and tokens work until the reset', async () => {
      const { account, token: accessToken } = await register();
      const { token } = await requestReset(account.email);
      await t.drainMail();

      await signIn(account.email, account.password).expect(200);
      await t.http().get(`${AUTH}/me`).auth(accessToken, { type: 'bearer' }).expect(200);

      await reset(token, 'after the reset now').expect(200);
      await signIn(account.email, account.password).expect(401);
      expectProblem(await t.http().get(`${AUTH}/me`).auth(accessToken, { type: 'bearer' }), 401);
    });

    it('expires after PASSWORD_RESET_TOKEN_EXPIRE_MINUTES', async () => {
      const early = await register();
      const late = await register();
      const { token: earlyToken } = await requestReset(early.account.email);
      t.advanceClock((RESET_TTL_MINUTES - 1) * 60_000);
      await reset(earlyToken, 'just in time reset').expect(200);

      const { token: lateToken } = await requestReset(late.account.email);
      t.advanceClock(RESET_TTL_MINUTES * 60_000 + 1000);
      expectProblem(await reset(lateToken, 'too late for this'), 400, AuthErrors.INVALID_RESET_TOKEN);
      await signIn(late.account.email, late.account.password).expect(200);
    });

    it('clears the sign-in failure count of the account', async () => {
      const { account } = await register();
      for (let i = 0; i < SIGNIN_MAX_FAILURES; i++) await signIn(account.email, `wrong guess ${i}`).expect(401);
      const locked = await signIn(account.email, account.password);
      expectProblem(locked, 429, AuthErrors.TOO_MANY_SIGNIN_FAILURES);

      const { token } = await requestReset(account.email);
      await reset(token, 'unlocked by the reset').expect(200);
      // The count starts again from zero, not merely below the limit.
      for (let i = 0; i < SIGNIN_MAX_FAILURES - 1; i++) await signIn(account.email, `wrong again ${i}`).expect(401);
      await signIn(account.email, 'unlocked by the reset').expect(200);
    });
  });

  describe('mail faults', () => {
    /** An app on a database of its own, so that `t`, which shares `database`, cannot send its mail. */
    async function startAlone(smtpUrl: string): Promise<{ app: TestApp; database: TestDatabase }> {
      const own = await createTestDatabase(databaseKind);
      return { app: await start({ databaseUrl: own.url, smtpUrl }), database: own };
    }

    it('answers sign-up and forgot-password as usual when SMTP is down, and logs the failure without a token or link', async () => {
      const dead = await TestSmtpServer.start();
      await dead.stop();
      const { app: down, database: downDatabase } = await startAlone(dead.url);
      try {
        const account = newAccount();
        secrets.add(account.password);
        const signup = await down.http().post(`${AUTH}/signup`).send(account).expect(201);
        secrets.add(signup.body.access_token);
        const forgot = await down.http().post(`${AUTH}/forgot-password`).send({ email: account.email }).expect(200);
        expect(forgot.body).toEqual({ message: AuthMessages.RESET_EMAIL_SENT });

        const userId = signup.body.user.id as number;
        const failures = () => down.logs.lines.filter((line) => /fail|error/i.test(line) && new RegExp(`\\b${userId}\\b`).test(line));
        await waitUntil('both failures are logged', () => failures().some((l) => /reset/i.test(l)) && failures().some((l) => /welcome/i.test(l)));
        // The token is unknown here (its mail never left), but it is 32 random bytes in base64url: no such
        // run, no link and no token parameter belongs in a log line.
        const leaks = down.logs.lines.filter((line) => line.includes(RESET_URL) || /token=|[A-Za-z0-9_-]{40,}/i.test(line));
        expect(leaks).toEqual([]);
        // Nothing is lost: both wait in the outbox for the next attempt.
        const pending = await sql(downDatabase, "SELECT kind FROM mail_outbox WHERE status = 'pending' ORDER BY id");
        expect(pending).toEqual([{ kind: 'welcome' }, { kind: 'password-reset' }]);
      } finally {
        await down.close();
        await downDatabase.drop();
      }
    });

    it('answers forgot-password without waiting for a slow SMTP server', async () => {
      const slowSmtp = await startSlowSmtp(3000);
      const { app: slow, database: slowDatabase } = await startAlone(slowSmtp.url);
      try {
        const { account } = await register(slow);

        const started = performance.now();
        await slow.http().post(`${AUTH}/forgot-password`).send({ email: account.email }).expect(200);
        expect(performance.now() - started).toBeLessThan(1500);

        // The mails (welcome and reset) did go to the slow server, which really took its time.
        const drainStarted = performance.now();
        await slow.drainMail();
        expect(performance.now() - drainStarted).toBeGreaterThan(1500);
        expect(slowSmtp.received()).toBe(2);
      } finally {
        await slow.close();
        await slowSmtp.stop();
        await slowDatabase.drop();
      }
    });
  });

  it('never logged a password, reset token, reset link, access token or argon2 hash', async () => {
    await t.drainMail();
    const hashes = ((await sql(database, 'SELECT hashed_password FROM users')) as { hashed_password: string }[]).map((r) => r.hashed_password);
    expect(hashes.length).toBeGreaterThan(5);
    expect(secrets.size).toBeGreaterThan(20);
    const lines = apps.flatMap((app) => app.logs.lines);
    expect(lines.length).toBeGreaterThan(0);
    const forbidden = [...secrets, ...hashes, RESET_URL, '$argon2'];
    expect(lines.filter((line) => forbidden.some((secret) => line.includes(secret)))).toEqual([]);
  });
});
