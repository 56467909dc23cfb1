import { AuthErrors } from '../src/common/auth.errors';
import { base32Decode, hotp, stepAt, TOTP_STEP_SECONDS } from '../src/mfa/totp';
import { createTestDatabase, DATABASES, sql, TestDatabase } from './support/databases';
import { expectProblem, newAccount, NewAccount } from './support/fixtures';
import { TestSmtpServer } from './support/smtp';
import { matrix, startTestApp, TestApp } from './support/test-app';

const AUTH = '/api/v1/auth';
const STEP_MS = TOTP_STEP_SECONDS * 1000;
const MAX_FAILURES = 10;

interface Enrolled {
  account: NewAccount;
  secret: Buffer;
  recoveryCodes: string[];
  /** An access token of the session that enabled TOTP, refreshed: `aal2`. */
  aal2: string;
}

const claimsOf = (token: string) => JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));

describe.each(matrix(DATABASES))('second factor (TOTP) on %s with %s', (databaseKind, adapter) => {
  let database: TestDatabase;
  let smtp: TestSmtpServer;
  let t: TestApp;
  /** The app's clock runs `offset` ms ahead of the machine's; tests move it to chosen points. */
  let offset = 0;
  const appNow = () => Date.now() + offset;
  const advance = (ms: number) => {
    offset += ms;
    t.advanceClock(ms);
  };
  /** Moves the app's clock to the middle of the next time step, so a test has 15 s before the step turns. */
  const toMidStep = () => advance(STEP_MS - (appNow() % STEP_MS) + STEP_MS / 2);
  const codeAt = (secret: Buffer, stepDelta = 0) => hotp(secret, stepAt(appNow()) + stepDelta);
  const http = () => t.http();
  const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

  beforeAll(async () => {
    database = await createTestDatabase(databaseKind);
    smtp = await TestSmtpServer.start();
    t = await startTestApp({ adapter, databaseUrl: database.url, smtpUrl: smtp.url, env: { SIGNIN_MAX_FAILURES: String(MAX_FAILURES) } });
  });

  afterAll(async () => {
    await t?.close();
    await smtp?.stop();
    await database?.drop();
  });

  async function signUp(): Promise<{ account: NewAccount; token: string; refresh: string }> {
    const account = newAccount();
    const res = await http().post(`${AUTH}/signup`).send(account).expect(201);
    return { account, token: res.body.access_token, refresh: res.body.refresh_token };
  }

  async function enroll(): Promise<Enrolled> {
    const { account, token, refresh } = await signUp();
    const setup = await http().post(`${AUTH}/mfa/totp/setup`).set(bearer(token)).expect(200);
    const secret = base32Decode(setup.body.secret);
    toMidStep();
    const confirmed = await http().post(`${AUTH}/mfa/totp/confirm`).set(bearer(token)).send({ code: codeAt(secret) }).expect(200);
    const refreshed = await http().post(`${AUTH}/refresh`).send({ refresh_token: refresh }).expect(200);
    advance(STEP_MS); // the confirming code's step is spent
    return { account, secret, recoveryCodes: confirmed.body.recovery_codes, aal2: refreshed.body.access_token };
  }

  /** The first half of a sign-in: the password, answered by 403 with an mfa_token. */
  async function mfaToken(account: NewAccount): Promise<string> {
    const res = await http().post(`${AUTH}/signin`).send({ email: account.email, password: account.password });
    expectProblem(res, 403, AuthErrors.MFA_REQUIRED);
    expect(res.body.mfa_token).toEqual(expect.any(String));
    return res.body.mfa_token;
  }

  const signInMfa = (token: string, code: string) => http().post(`${AUTH}/signin/mfa`).send({ mfa_token: token, code });

  it('sets up: a base32 secret, its otpauth URL, and a QR code an <img> can show as is', async () => {
    const { account, token } = await signUp();
    const res = await http().post(`${AUTH}/mfa/totp/setup`).set(bearer(token)).expect(200);
    expect(res.body.secret).toMatch(/^[A-Z2-7]{32}$/);
    const url = new URL(res.body.otpauth_url);
    expect(url.protocol).toBe('otpauth:');
    expect(url.searchParams.get('secret')).toBe(res.body.secret);
    expect(decodeURIComponent(url.pathname)).toContain(account.email);
    expect(res.body.qr_code).toMatch(/^data:image\/svg\+xml;base64,/);
    expect(Buffer.from(res.body.qr_code.split(',')[1], 'base64').toString()).toMatch(/^<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    // Pending until confirmed: signing in still needs no code, and a new setup replaces the secret.
    await http().post(`${AUTH}/signin`).send({ email: account.email, password: account.password }).expect(200);
    const again = await http().post(`${AUTH}/mfa/totp/setup`).set(bearer(token)).expect(200);
    expect(again.body.secret).not.toBe(res.body.secret);
  });

  it('keeps the secret encrypted at rest: a database dump shows no usable secret', async () => {
    const { token } = await signUp();
    const setup = await http().post(`${AUTH}/mfa/totp/setup`).set(bearer(token)).expect(200);
    const rows = (await sql(database, 'SELECT secret FROM totp_factors')) as { secret: string }[];
    expect(rows.length).toBeGreaterThan(0);
    for (const row of rows) {
      expect(row.secret).toMatch(/^v1\./);
      expect(row.secret).not.toContain(setup.body.secret);
    }
  });

  it('confirms with a first code: ten recovery codes, other sessions end, this one is aal2 from its next refresh, a notice is mailed', async () => {
    const { account, token, refresh } = await signUp();
    const other = await http().post(`${AUTH}/signin`).send({ email: account.email, password: account.password }).expect(200);
    expectProblem(await http().post(`${AUTH}/mfa/totp/confirm`).set(bearer(token)).send({ code: '123456' }), 400, AuthErrors.NO_PENDING_MFA);
    const setup = await http().post(`${AUTH}/mfa/totp/setup`).set(bearer(token)).expect(200);
    const secret = base32Decode(setup.body.secret);
    toMidStep();
    const wrong = String((Number(codeAt(secret)) + 1) % 1_000_000).padStart(6, '0');
    expectProblem(await http().post(`${AUTH}/mfa/totp/confirm`).set(bearer(token)).send({ code: wrong }), 400, AuthErrors.INVALID_MFA_CODE);

    const confirmed = await http().post(`${AUTH}/mfa/totp/confirm`).set(bearer(token)).send({ code: codeAt(secret) }).expect(200);
    const codes: string[] = confirmed.body.recovery_codes;
    expect(codes).toHaveLength(10);
    expect(new Set(codes).size).toBe(10);
    for (const code of codes) expect(code).toMatch(/^[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}$/);

    expectProblem(await http().post(`${AUTH}/refresh`).send({ refresh_token: other.body.refresh_token }), 401, AuthErrors.INVALID_REFRESH_TOKEN);
    const me = await http().get(`${AUTH}/me`).set(bearer(token)).expect(200);
    expect(me.body.mfa_enabled).toBe(true);
    expect(claimsOf(token)).toMatchObject({ aal: 'aal1', amr: ['pwd'] });
    // The token in hand predates the second factor: sensitive routes ask for more.
    expectProblem(
      await http().post(`${AUTH}/change-password`).set(bearer(token)).send({ old_password: account.password, new_password: 'a brand new pass phrase' }),
      403,
      AuthErrors.ADDITIONAL_AUTH_REQUIRED,
    );
    const refreshed = await http().post(`${AUTH}/refresh`).send({ refresh_token: refresh }).expect(200);
    expect(claimsOf(refreshed.body.access_token)).toMatchObject({ aal: 'aal2', amr: ['pwd', 'otp'] });
    expect((await smtp.waitFor(account.email, (m) => /Two-factor authentication is on/.test(m.subject))).text).not.toMatch(/https?:\/\//);
    expectProblem(await http().post(`${AUTH}/mfa/totp/setup`).set(bearer(refreshed.body.access_token)), 400, AuthErrors.MFA_ALREADY_ENABLED);
  });

  it('signs in in two steps: 403 with an mfa_token and no session, then the code opens an aal2 session; the token works once', async () => {
    const { account, secret } = await enroll();
    const sessionsBefore = await sql(database, 'SELECT id FROM user_sessions');
    const token = await mfaToken(account);
    expect(await sql(database, 'SELECT id FROM user_sessions')).toHaveLength(sessionsBefore.length);

    expectProblem(await signInMfa('x'.repeat(43), codeAt(secret)), 401, AuthErrors.INVALID_MFA_TOKEN);
    const res = await signInMfa(token, codeAt(secret)).expect(200);
    expect(claimsOf(res.body.access_token)).toMatchObject({ aal: 'aal2', amr: ['pwd', 'otp'] });
    expect(res.body.user.mfa_enabled).toBe(true);
    await http().get(`${AUTH}/me`).set(bearer(res.body.access_token)).expect(200);

    advance(STEP_MS);
    expectProblem(await signInMfa(token, codeAt(secret)), 401, AuthErrors.INVALID_MFA_TOKEN);
    // Five minutes on, a token never used has expired.
    const stale = await mfaToken(account);
    advance(5 * 60 * 1000 + 1000);
    expectProblem(await signInMfa(stale, codeAt(secret)), 401, AuthErrors.INVALID_MFA_TOKEN);
  });

  it('takes a code one step early or late, not two', async () => {
    const { account, secret } = await enroll();
    toMidStep();
    expectProblem(await signInMfa(await mfaToken(account), codeAt(secret, -2)), 401, AuthErrors.INVALID_MFA_CODE);
    expectProblem(await signInMfa(await mfaToken(account), codeAt(secret, +2)), 401, AuthErrors.INVALID_MFA_CODE);
    await signInMfa(await mfaToken(account), codeAt(secret, -1)).expect(200);
    advance(2 * STEP_MS);
    await signInMfa(await mfaToken(account), codeAt(secret, +1)).expect(200);
  });

  it('takes a code once: a replay, in its step or after a later one was used, is refused', async () => {
    const { account, secret } = await enroll();
    toMidStep();
    const code = codeAt(secret);
    await signInMfa(await mfaToken(account), code).expect(200);
    expectProblem(await signInMfa(await mfaToken(account), code), 401, AuthErrors.INVALID_MFA_CODE);
    // The previous step's code is still within the drift window, but older than the one used.
    expectProblem(await signInMfa(await mfaToken(account), codeAt(secret, -1)), 401, AuthErrors.INVALID_MFA_CODE);
    advance(STEP_MS);
    await signInMfa(await mfaToken(account), codeAt(secret)).expect(200);
  });

  it('lets one of five requests racing with one code through', async () => {
    // Five sign-ins: their password steps and codes together stay within the ten attempts of the limit.
    const { account, secret } = await enroll();
    toMidStep();
    const tokens = await Promise.all(Array.from({ length: 5 }, () => mfaToken(account)));
    const code = codeAt(secret);
    const results = await Promise.all(tokens.map((token) => signInMfa(token, code)));
    expect(results.map((r) => r.status).sort()).toEqual([200, 401, 401, 401, 401]);
    for (const res of results.filter((r) => r.status === 401)) expectProblem(res, 401, AuthErrors.INVALID_MFA_CODE);
  });

  it('signs in with a recovery code once, mails a notice, and a new set voids the old', async () => {
    const { account, recoveryCodes, aal2 } = await enroll();
    const [first, second] = recoveryCodes;
    const res = await signInMfa(await mfaToken(account), first.toUpperCase()).expect(200);
    expect(claimsOf(res.body.access_token).aal).toBe('aal2');
    expectProblem(await signInMfa(await mfaToken(account), first), 401, AuthErrors.INVALID_MFA_CODE);
    await smtp.waitFor(account.email, (m) => /A recovery code was used/.test(m.subject));

    const renewed = await http().post(`${AUTH}/mfa/recovery-codes`).set(bearer(aal2)).expect(200);
    expect(renewed.body.recovery_codes).toHaveLength(10);
    expect(renewed.body.recovery_codes).not.toContain(second);
    expectProblem(await signInMfa(await mfaToken(account), second), 401, AuthErrors.INVALID_MFA_CODE);
    await signInMfa(await mfaToken(account), renewed.body.recovery_codes[0]).expect(200);
    const stored = (await sql(database, 'SELECT code_hash FROM recovery_codes')) as { code_hash: string }[];
    for (const row of stored) expect(renewed.body.recovery_codes.map((c: string) => c.replace('-', ''))).not.toContain(row.code_hash);
  });

  it('counts wrong codes like failed sign-ins, and a right password does not reset that count', async () => {
    const { account, secret } = await enroll();
    toMidStep();
    const token = await mfaToken(account); // attempt 1: until the second factor, a right password counts too
    for (let i = 0; i < MAX_FAILURES - 2; i++) expectProblem(await signInMfa(token, '000000'), 401, AuthErrors.INVALID_MFA_CODE);
    await mfaToken(account); // the password again: attempt 10 of 10, not a fresh count
    const limited = await signInMfa(token, codeAt(secret));
    expectProblem(limited, 429, AuthErrors.TOO_MANY_SIGNIN_FAILURES);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
  });

  it('asks an aal2 session and a code to turn TOTP off, and mails a notice', async () => {
    const { account, secret } = await enroll();
    const aal1 = (await http().post(`${AUTH}/signup`).send(newAccount()).expect(201)).body.access_token as string;
    // A user with TOTP, on a password-only session: refused.
    const passwordOnly = await http().post(`${AUTH}/signin`).send({ email: account.email, password: account.password });
    expectProblem(passwordOnly, 403, AuthErrors.MFA_REQUIRED);
    toMidStep();
    const signedIn = await signInMfa(passwordOnly.body.mfa_token, codeAt(secret)).expect(200);
    const aal2 = signedIn.body.access_token as string;
    expectProblem(await http().post(`${AUTH}/mfa/recovery-codes`).set(bearer(aal1)), 403, AuthErrors.ADDITIONAL_AUTH_REQUIRED);
    expectProblem(await http().post(`${AUTH}/mfa/totp/disable`).set(bearer(aal2)).send({ code: codeAt(secret) }), 400, AuthErrors.INVALID_MFA_CODE);
    advance(STEP_MS);
    const off = await http().post(`${AUTH}/mfa/totp/disable`).set(bearer(aal2)).send({ code: codeAt(secret) }).expect(200);
    expect(off.body).toEqual({ message: 'Two-factor authentication disabled' });
    await smtp.waitFor(account.email, (m) => /Two-factor authentication is off/.test(m.subject));
    const plain = await http().post(`${AUTH}/signin`).send({ email: account.email, password: account.password }).expect(200);
    expect(plain.body.user.mfa_enabled).toBe(false);
  });
});

/** The replay guard lives in the database: two instances on one database let one of two racing requests through. */
describe('second factor across two instances', () => {
  let database: TestDatabase;
  let apps: TestApp[] = [];

  beforeAll(async () => {
    database = await createTestDatabase(DATABASES.includes('postgres') ? 'postgres' : 'sqlite');
    // One after the other: two processes running the migrations at once would race on CREATE TABLE.
    for (let i = 0; i < 2; i++) apps.push(await startTestApp({ adapter: 'fastify', databaseUrl: database.url }));
  });

  afterAll(async () => {
    for (const app of apps) await app.close();
    await database?.drop();
  });

  it('accepts a code on one instance only', async () => {
    const [a, b] = apps;
    const account = newAccount();
    const { body } = await a.http().post(`${AUTH}/signup`).send(account).expect(201);
    const setup = await a.http().post(`${AUTH}/mfa/totp/setup`).auth(body.access_token, { type: 'bearer' }).expect(200);
    const secret = base32Decode(setup.body.secret);
    const code = () => hotp(secret, stepAt(Date.now()));
    await a.http().post(`${AUTH}/mfa/totp/confirm`).auth(body.access_token, { type: 'bearer' }).send({ code: code() }).expect(200);
    for (const app of apps) app.advanceClock(STEP_MS);
    const now = Date.now() + STEP_MS;
    const tokens = await Promise.all(
      [a, b, a, b].map(async (app) => (await app.http().post(`${AUTH}/signin`).send({ email: account.email, password: account.password })).body.mfa_token as string),
    );
    const shared = hotp(secret, stepAt(now));
    const results = await Promise.all(tokens.map((token, i) => [a, b, a, b][i].http().post(`${AUTH}/signin/mfa`).send({ mfa_token: token, code: shared })));
    expect(results.map((r) => r.status).sort()).toEqual([200, 401, 401, 401]);
  });
});
