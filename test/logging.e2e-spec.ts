import { randomBytes } from 'node:crypto';
import { base32Decode, hotp, stepAt, TOTP_STEP_SECONDS } from '../src/mfa/totp';
import { createTestDatabase, DATABASES, TestDatabase } from './support/databases';
import { newAccount } from './support/fixtures';
import { ReceivedMail, TestSmtpServer, tokenFromMail } from './support/smtp';
import { matrix, RESET_URL, startTestApp, TestApp } from './support/test-app';

const AUTH = '/api/v1/auth';
const STEP_MS = TOTP_STEP_SECONDS * 1000;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

interface LogLine {
  level: string;
  time: string;
  msg: string;
  request_id?: string;
  context?: string;
  method?: string;
  route?: string | null;
  path?: string;
  status?: number;
  duration_ms?: number;
}

const linkOf = (mail: ReceivedMail) => mail.text.match(/https?:\/\/\S+/)![0];

/** Where a secret could show up: whole, or any long enough piece of it (a truncated copy is a leak too). */
function leaksOf(lines: string[], secret: string): string[] {
  if (/^\d{6}$/.test(secret)) {
    // A TOTP code: six digits standing alone, not inside an id or a timestamp.
    const alone = new RegExp(`(?<![0-9a-fA-F:.-])${secret}(?![0-9a-fA-F])`);
    return lines.filter((line) => alone.test(line));
  }
  const pieces = secret.length >= 24 ? Array.from({ length: secret.length - 15 }, (_, i) => secret.slice(i, i + 16)) : [secret];
  return lines.filter((line) => pieces.some((piece) => line.includes(piece)));
}

describe.each(matrix(DATABASES))('JSON logs on %s with %s', (databaseKind, adapter) => {
  let database: TestDatabase;
  let smtp: TestSmtpServer;
  let t: TestApp;
  let cookieApp: TestApp;
  let offsetMs = 0;
  const advance = (ms: number) => {
    offsetMs += ms;
    t.advanceClock(ms);
    cookieApp?.advanceClock(ms);
  };
  /** Moves the clocks to the middle of the next TOTP step: a code of its own, and 15 s before it turns. */
  const nextStep = () => advance(STEP_MS - ((Date.now() + offsetMs) % STEP_MS) + STEP_MS / 2);
  const secrets = new Set<string>();
  const keep = (...values: (string | undefined)[]) => values.forEach((value) => value && secrets.add(value));
  /** Every request also sends a cookie and, where none is needed, a bearer header of its own: both secrets. */
  const strayCookie = `sid=${randomBytes(24).toString('base64url')}`;
  const http = () => t.http();

  beforeAll(async () => {
    database = await createTestDatabase(databaseKind);
    smtp = await TestSmtpServer.start();
    t = await startTestApp({ adapter, databaseUrl: database.url, smtpUrl: smtp.url, pinoLogs: true });
    cookieApp = await startTestApp({ adapter, databaseUrl: database.url, smtpUrl: smtp.url, pinoLogs: true, env: { REFRESH_TOKEN_COOKIE: 'true' } });
    keep(strayCookie);
  });

  afterAll(async () => {
    await cookieApp?.close();
    await t?.close();
    await smtp?.stop();
    await database?.drop();
  });

  it('runs every flow and finds none of the secrets it saw in the log', async () => {
    const account = newAccount();
    keep(account.password);
    const post = (path: string, body: object, token?: string) => {
      const req = http().post(`${AUTH}${path}`).set('Cookie', strayCookie);
      return (token ? req.set('Authorization', `Bearer ${token}`) : req).send(body);
    };
    const tokensOf = (body: { access_token?: string; refresh_token?: string }) => keep(body.access_token, body.refresh_token);

    const signup = await post('/signup', account).expect(201);
    tokensOf(signup.body);
    const welcome = await smtp.waitFor(account.email);
    keep(linkOf(welcome), tokenFromMail(welcome));
    await post('/verify-email', { token: tokenFromMail(welcome) }).expect(200);
    await post('/resend-verification', { email: account.email }).expect(200);

    const wrong = `not the password ${randomBytes(6).toString('hex')}`;
    keep(wrong);
    await post('/signin', { email: account.email, password: wrong }).expect(401);
    const signin = await post('/signin', { email: account.email, password: account.password }).expect(200);
    tokensOf(signin.body);
    const refreshed = await post('/refresh', { refresh_token: signin.body.refresh_token }).expect(200);
    tokensOf(refreshed.body);
    const bogusRefresh = randomBytes(32).toString('base64url');
    keep(bogusRefresh);
    await post('/refresh', { refresh_token: bogusRefresh }).expect(401);
    await http().get(`${AUTH}/me`).set('Authorization', `Bearer ${refreshed.body.access_token}`).set('Cookie', strayCookie).expect(200);
    const forged = `${signin.body.access_token.slice(0, -6)}AAAAAA`;
    keep(forged);
    await http().get(`${AUTH}/me`).set('Authorization', `Bearer ${forged}`).expect(401);

    await post('/forgot-password', { email: account.email }).expect(200);
    const resetMail = await smtp.waitFor(account.email, (mail) => mail.text.includes(RESET_URL));
    keep(linkOf(resetMail), tokenFromMail(resetMail));
    const resetPassword = `reset pass phrase ${randomBytes(6).toString('hex')}`;
    keep(resetPassword);
    await post('/reset-password', { token: tokenFromMail(resetMail), new_password: resetPassword }).expect(200);
    await post('/reset-password', { token: tokenFromMail(resetMail), new_password: resetPassword }).expect(400);

    const afterReset = await post('/signin', { email: account.email, password: resetPassword }).expect(200);
    tokensOf(afterReset.body);
    const changed = `changed pass phrase ${randomBytes(6).toString('hex')}`;
    keep(changed);
    await post('/change-password', { old_password: wrong, new_password: changed }, afterReset.body.access_token).expect(400);
    await post('/change-password', { old_password: resetPassword, new_password: changed }, afterReset.body.access_token).expect(200);

    const beforeMfa = await post('/signin', { email: account.email, password: changed }).expect(200);
    tokensOf(beforeMfa.body);
    const setup = await post('/mfa/totp/setup', {}, beforeMfa.body.access_token).expect(200);
    keep(setup.body.secret, setup.body.otpauth_url);
    const secret = base32Decode(setup.body.secret);
    const code = () => hotp(secret, stepAt(Date.now() + offsetMs));
    nextStep();
    keep(code());
    const confirmed = await post('/mfa/totp/confirm', { code: code() }, beforeMfa.body.access_token).expect(200);
    for (const recovery of confirmed.body.recovery_codes as string[]) keep(recovery, recovery.replaceAll('-', ''));

    const first = await post('/signin', { email: account.email, password: changed }).expect(403);
    keep(first.body.mfa_token);
    await post('/signin/mfa', { mfa_token: first.body.mfa_token, code: code() === '000000' ? '111111' : '000000' }).expect(401);
    nextStep();
    keep(code());
    const withCode = await post('/signin/mfa', { mfa_token: first.body.mfa_token, code: code() }).expect(200);
    tokensOf(withCode.body);
    const second = await post('/signin', { email: account.email, password: changed }).expect(403);
    keep(second.body.mfa_token);
    const withRecovery = await post('/signin/mfa', { mfa_token: second.body.mfa_token, code: confirmed.body.recovery_codes[0] }).expect(200);
    tokensOf(withRecovery.body);

    const sessions = await http().get(`${AUTH}/sessions`).set('Authorization', `Bearer ${withCode.body.access_token}`).expect(200);
    const other = sessions.body.find((session: { current: boolean }) => !session.current);
    await http().delete(`${AUTH}/sessions/${other.id}`).set('Authorization', `Bearer ${withCode.body.access_token}`).expect(200);
    await post('/signout', {}, withCode.body.access_token).expect(200);

    // Cookie mode: the refresh token travels in Set-Cookie and Cookie only.
    const cookieSignin = await cookieApp.http().post(`${AUTH}/signin`).send({ email: account.email, password: changed }).expect(403);
    keep(cookieSignin.body.mfa_token);
    nextStep();
    keep(code());
    const cookieMfa = await cookieApp.http().post(`${AUTH}/signin/mfa`).send({ mfa_token: cookieSignin.body.mfa_token, code: code() }).expect(200);
    keep(cookieMfa.body.access_token);
    const cookie = (cookieMfa.headers['set-cookie'] as unknown as string[])[0].split(';')[0];
    keep(cookie, cookie.split('=')[1]);
    const cookieRefresh = await cookieApp.http().post(`${AUTH}/refresh`).set('Cookie', cookie).send({}).expect(200);
    const nextCookie = (cookieRefresh.headers['set-cookie'] as unknown as string[])[0].split(';')[0];
    keep(cookieRefresh.body.access_token, nextCookie, nextCookie.split('=')[1]);
    await cookieApp.http().post(`${AUTH}/signout`).set('Authorization', `Bearer ${cookieRefresh.body.access_token}`).send({}).expect(200);

    await t.drainMail();
    await cookieApp.drainMail();
    const lines = t.pinoLines(); // the cookie app started after this one: its lines are in here too
    expect(lines.length).toBeGreaterThan(40);
    for (const line of lines) expect(() => JSON.parse(line)).not.toThrow();
    const completed = lines.map((line) => JSON.parse(line) as LogLine).filter((line) => line.msg === 'request completed');
    expect(completed.length).toBeGreaterThanOrEqual(28);

    expect(secrets.size).toBeGreaterThan(40);
    const leaks = [...secrets].map((value) => ({ secret: value, lines: leaksOf(lines, value) })).filter((leak) => leak.lines.length > 0);
    expect(leaks).toEqual([]);
    expect(lines.filter((line) => /bearer |authorization|set-cookie|"cookie"/i.test(line))).toEqual([]);
  });

  it('puts the request id on every line of a request, and route template, status and duration on its last', async () => {
    const account = newAccount();
    const signup = await http().post(`${AUTH}/signup`).send(account).expect(201);
    const token = signup.body.access_token as string;
    const missing = '00000000-0000-4000-8000-00000000abcd';
    await http().delete(`${AUTH}/sessions/${missing}`).set('Authorization', `Bearer ${token}`).expect(404);
    await t.drainMail();
    const lines = t.pinoLines().map((line) => JSON.parse(line) as LogLine);

    // The last sign-up: the lines of the test before are in the suite's log too.
    const signupLine = lines.filter((line) => line.msg === 'request completed' && line.route === `${AUTH}/signup` && line.path === `${AUTH}/signup` && line.status === 201).pop()!;
    expect(signupLine).toMatchObject({ level: 'info', method: 'POST', request_id: expect.stringMatching(UUID), duration_ms: expect.any(Number) });
    const ofSignup = lines.filter((line) => line.request_id === signupLine.request_id);
    // The module's own audit line (through Nest's Logger) is tied to the request by the logger, as the line says itself.
    const event = ofSignup.find((line) => line.context === 'AuthEvents')!;
    expect(event.msg).toMatch(new RegExp(`^event=signed_up user_id=${signup.body.user.id} .*request_id=${signupLine.request_id} `));
    // The welcome mail, sent by the worker this request woke, may carry its id too: it ran on the request's behalf.
    expect(ofSignup.map((line) => line.msg).filter((msg) => !msg.startsWith('mail sent'))).toEqual([event.msg, 'request completed']);
    // Every line naming a request id in its text carries the same id as a field.
    for (const line of lines.filter((candidate) => /request_id=/.test(candidate.msg))) {
      expect(line.request_id).toBe(line.msg.match(/request_id=(\S+)/)![1]);
    }

    const deleteLine = lines.find((line) => line.msg === 'request completed' && line.path === `${AUTH}/sessions/${missing}`)!;
    expect(deleteLine).toMatchObject({ method: 'DELETE', route: `${AUTH}/sessions/:id`, status: 404, request_id: expect.stringMatching(UUID) });
    const ids = lines.filter((line) => line.msg === 'request completed').map((line) => line.request_id);
    expect(new Set(ids).size).toBe(ids.length);
    // Lines outside any request carry none.
    const started = lines.find((line) => line.msg === 'Nest application successfully started')!;
    expect(started.request_id).toBeUndefined();
  });
});
