import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { AuthErrors, AuthMessages } from '../src/common/auth.errors';
import { TransactionRunner } from '../src/common/transaction-runner';
import { UsersService } from '../src/users/users.service';
import { MAX_SESSIONS_PER_USER, SessionsService } from '../src/sessions/sessions.service';
import { createTestDatabase, DATABASES, sql, TestDatabase } from './support/databases';
import { expectProblem, newAccount, NewAccount } from './support/fixtures';
import { TestSmtpServer, tokenFromMail } from './support/smtp';
import { matrix, startTestApp, TestApp } from './support/test-app';

const AUTH = '/api/v1/auth';
const DAY_MS = 24 * 3600_000;
const REFRESH_TTL_DAYS = 30;
const REFRESH_TTL_SECONDS = REFRESH_TTL_DAYS * 86_400;
const GRACE_MS = 10_000;
const ACCESS_TTL_SECONDS = 30 * 60;

const INVALID_REFRESH_TOKEN = 'Invalid or expired refresh token';
const SESSION_NOT_FOUND = 'Session not found';
const SIGNED_OUT = 'Signed out successfully';
const SIGNED_OUT_ALL = 'Signed out of all sessions';
const SESSION_ENDED = 'Session ended';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const REFRESH_TOKEN = /^[A-Za-z0-9_-]{43,}$/;
const LOOPBACK = /^(::ffff:)?127\.0\.0\.1$|^::1$/;

const sha256Hex = (value: string) => createHash('sha256').update(value).digest('hex');

/** The claims of a JWT, read without verifying it. */
function claimsOf(accessToken: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(accessToken.split('.')[1], 'base64url').toString('utf8')) as Record<string, unknown>;
}

const sidOf = (accessToken: string) => claimsOf(accessToken).sid as string;

/** What a sign-up, sign-in or refresh hands out. */
interface Tokens {
  access: string;
  refresh: string;
  sid: string;
}

interface Session extends Tokens {
  account: NewAccount;
  userId: number;
}

interface SessionView {
  id: string;
  created_at: string;
  last_used_at: string;
  user_agent: string | null;
  ip: string | null;
  current: boolean;
}

/**
 * The requests these tests make, against `defaultApp()` unless another app is named. Every token and
 * password they handle goes into `secrets`, which no log line may contain.
 */
function sessionHelpers(defaultApp: () => TestApp, secrets: Set<string>) {
  function remember(tokens: Tokens): Tokens {
    secrets.add(tokens.access).add(tokens.refresh).add(sha256Hex(tokens.refresh));
    return tokens;
  }

  function tokensOf(body: Record<string, unknown>): Tokens {
    const access = body.access_token as string;
    return remember({ access, refresh: body.refresh_token as string, sid: sidOf(access) });
  }

  async function signUp(app: TestApp = defaultApp(), userAgent?: string): Promise<Session> {
    const account = newAccount();
    secrets.add(account.password);
    const req = app.http().post(`${AUTH}/signup`);
    if (userAgent) req.set('User-Agent', userAgent);
    const res = await req.send(account).expect(201);
    return { account, userId: res.body.user.id as number, ...tokensOf(res.body) };
  }

  /** A further session of the same user. */
  async function signIn(account: NewAccount, app: TestApp = defaultApp(), userAgent?: string): Promise<Session> {
    const req = app.http().post(`${AUTH}/signin`);
    if (userAgent) req.set('User-Agent', userAgent);
    const res = await req.send({ email: account.email, password: account.password }).expect(200);
    return { account, userId: res.body.user.id as number, ...tokensOf(res.body) };
  }

  const refresh = (token: unknown, app: TestApp = defaultApp()) => app.http().post(`${AUTH}/refresh`).send({ refresh_token: token });

  /** Refreshes, expecting 200, and returns the new pair. */
  async function refreshOk(token: string, app: TestApp = defaultApp()): Promise<Tokens> {
    const res = await refresh(token, app);
    expect(res.status).toBe(200);
    return tokensOf(res.body);
  }

  async function expectRefreshRejected(token: string, app: TestApp = defaultApp()): Promise<void> {
    expectProblem(await refresh(token, app), 401, INVALID_REFRESH_TOKEN);
  }

  const me = (access: string, app: TestApp = defaultApp()) => app.http().get(`${AUTH}/me`).auth(access, { type: 'bearer' });

  async function expectAccessRejected(access: string, app: TestApp = defaultApp()): Promise<void> {
    const res = await me(access, app);
    expectProblem(res, 401, AuthErrors.INVALID_ACCESS_TOKEN);
    expect(res.headers['www-authenticate']).toBe('Bearer');
  }

  async function listSessions(access: string, app: TestApp = defaultApp()): Promise<SessionView[]> {
    const res = await app.http().get(`${AUTH}/sessions`).auth(access, { type: 'bearer' }).expect(200);
    expect(Array.isArray(res.body)).toBe(true);
    return res.body as SessionView[];
  }

  const endSession = (access: string, id: string, app: TestApp = defaultApp()) =>
    app.http().delete(`${AUTH}/sessions/${encodeURIComponent(id)}`).auth(access, { type: 'bearer' });

  const signOut = (access: string, app: TestApp = defaultApp()) => app.http().post(`${AUTH}/signout`).auth(access, { type: 'bearer' });
  const signOutAll = (access: string, app: TestApp = defaultApp()) => app.http().post(`${AUTH}/signout-all`).auth(access, { type: 'bearer' });

  return { tokensOf, signUp, signIn, refresh, refreshOk, expectRefreshRejected, me, expectAccessRejected, listSessions, endSession, signOut, signOutAll };
}

describe.each(matrix(DATABASES))('sessions and refresh tokens on %s with %s', (databaseKind, adapter) => {
  let database: TestDatabase;
  let smtp: TestSmtpServer;
  let t: TestApp;
  /** Every app this block starts: a Nest logger override is process-wide, so lines may land in any of them. */
  const apps: TestApp[] = [];
  /** Every refresh token (and its hash) and access token this block handles; none may reach a log line. */
  const secrets = new Set<string>();

  const { tokensOf, signUp, signIn, refresh, refreshOk, expectRefreshRejected, me, expectAccessRejected, listSessions, endSession, signOut, signOutAll } =
    sessionHelpers(() => t, secrets);

  beforeAll(async () => {
    database = await createTestDatabase(databaseKind);
    smtp = await TestSmtpServer.start();
    t = await startTestApp({ adapter, databaseUrl: database.url, smtpUrl: smtp.url });
    apps.push(t);
  });

  afterAll(async () => {
    for (const app of apps) await app.close();
    await smtp?.stop();
    await database?.drop();
  });

  describe('token responses', () => {
    const tokenResponse = (userId: number) => ({
      access_token: expect.any(String),
      token_type: 'bearer',
      expires_in: ACCESS_TTL_SECONDS,
      refresh_token: expect.stringMatching(REFRESH_TOKEN),
      refresh_expires_in: REFRESH_TTL_SECONDS,
      user: expect.objectContaining({ id: userId }),
    });

    it('sign-up, sign-in and refresh answer access and refresh token, refresh_expires_in 30 days, and no cookie', async () => {
      const account = newAccount();
      const signup = await t.http().post(`${AUTH}/signup`).send(account).expect(201);
      const userId = signup.body.user.id as number;
      expect(signup.body).toEqual(tokenResponse(userId));
      expect(signup.body.user.email).toBe(account.email);

      const signin = await t.http().post(`${AUTH}/signin`).send({ email: account.email, password: account.password }).expect(200);
      expect(signin.body).toEqual(tokenResponse(userId));

      const refreshed = await refresh(signin.body.refresh_token).expect(200);
      expect(refreshed.body).toEqual(tokenResponse(userId));

      for (const res of [signup, signin, refreshed]) {
        tokensOf(res.body);
        const cookies = ([] as string[]).concat(res.headers['set-cookie'] ?? []);
        expect(cookies.filter((c) => c.startsWith('refresh_token='))).toEqual([]);
      }
      const refreshTokens = [signup, signin, refreshed].map((res) => res.body.refresh_token as string);
      expect(new Set(refreshTokens).size).toBe(3);
    });

    it('gives each sign-in a session of its own, whose id is the sid claim of its access tokens', async () => {
      const first = await signUp();
      const second = await signIn(first.account);
      expect(first.sid).toMatch(UUID);
      expect(second.sid).toMatch(UUID);
      expect(second.sid).not.toBe(first.sid);
      expect(claimsOf(first.access)).toMatchObject({ sub: String(first.userId), typ: 'access', sid: first.sid });

      const rows = (await sql(database, 'SELECT id, user_id FROM user_sessions WHERE user_id = $1', [first.userId])) as {
        id: string;
        user_id: number;
      }[];
      expect(rows.map((row) => String(row.id)).sort()).toEqual([first.sid, second.sid].sort());

      // A refresh stays in its session.
      const next = await refreshOk(second.refresh);
      expect(next.sid).toBe(second.sid);
      await me(next.access).expect(200);
    });

    it('stores only the SHA-256 (hex) of a refresh token, never the token', async () => {
      const session = await signUp();
      const next = await refreshOk(session.refresh);
      const hashes = ((await sql(database, 'SELECT token_hash FROM refresh_tokens')) as { token_hash: string }[]).map((r) => r.token_hash);
      for (const token of [session.refresh, next.refresh]) {
        expect(hashes).toContain(sha256Hex(token));
      }
      for (const hash of hashes) expect(hash).toMatch(/^[0-9a-f]{64}$/);
      const everything = JSON.stringify([
        await sql(database, 'SELECT * FROM refresh_tokens'),
        await sql(database, 'SELECT * FROM user_sessions'),
      ]);
      expect(everything).not.toContain(session.refresh);
      expect(everything).not.toContain(next.refresh);
    });
  });

  describe('POST /refresh', () => {
    it('hands out a new access token and a new refresh token, which refreshes in turn', async () => {
      const session = await signUp();
      const first = await refreshOk(session.refresh);
      expect(first.refresh).toMatch(REFRESH_TOKEN);
      expect(first.refresh).not.toBe(session.refresh);
      const meRes = await me(first.access).expect(200);
      expect(meRes.body).toMatchObject({ id: session.userId, email: session.account.email });

      const second = await refreshOk(first.refresh);
      expect(second.refresh).not.toBe(first.refresh);
      expect(second.refresh).not.toBe(session.refresh);
      await me(second.access).expect(200);
    });

    it('answers a spent token presented again within the grace window with the same successor', async () => {
      const session = await signUp();
      const first = await refresh(session.refresh).expect(200);
      t.advanceClock(GRACE_MS - 1_000);
      const again = await refresh(session.refresh).expect(200);
      expect(again.body.refresh_token).toBe(first.body.refresh_token);
      tokensOf(again.body);
      await me(again.body.access_token).expect(200);
      // Both tabs stay signed in: the successor still refreshes.
      const next = await refreshOk(first.body.refresh_token);
      await me(next.access).expect(200);
    });

    it('treats a spent token presented after the grace window as stolen: 401, and the whole session is revoked', async () => {
      const victim = await signUp();
      const otherSessionOfVictim = await signIn(victim.account);
      const bystander = await signUp();
      const successor = await refreshOk(victim.refresh);
      await me(successor.access).expect(200);

      t.advanceClock(GRACE_MS + 1_000);
      const linesBefore = apps.map((app) => app.logs.lines.length);
      expectProblem(await refresh(victim.refresh), 401, INVALID_REFRESH_TOKEN);

      // The family is gone: the successor and every access token of the session.
      await expectRefreshRejected(successor.refresh);
      await expectAccessRejected(successor.access);
      await expectAccessRejected(victim.access);
      const sessions = await listSessions(otherSessionOfVictim.access);
      expect(sessions.map((s) => s.id)).toEqual([otherSessionOfVictim.sid]);

      // Only that session: the user's other session and other users carry on.
      await me(otherSessionOfVictim.access).expect(200);
      await refreshOk(otherSessionOfVictim.refresh);
      await me(bystander.access).expect(200);
      await refreshOk(bystander.refresh);

      // Logged as an event, without the token.
      const lines = apps.flatMap((app, i) => app.logs.lines.slice(linesBefore[i]));
      const reuse = lines.filter((line) => line.includes('event=refresh_token_reused'));
      expect(reuse.length).toBeGreaterThanOrEqual(1);
      for (const token of [victim.refresh, successor.refresh, sha256Hex(victim.refresh), sha256Hex(successor.refresh)]) {
        expect(reuse.filter((line) => line.includes(token))).toEqual([]);
      }
    });

    it('ends the session too when the grace re-presentation is followed by a late one', async () => {
      const session = await signUp();
      const first = await refresh(session.refresh).expect(200);
      const again = await refresh(session.refresh).expect(200);
      expect(again.body.refresh_token).toBe(first.body.refresh_token);
      tokensOf(again.body);

      t.advanceClock(GRACE_MS + 1_000);
      await expectRefreshRejected(session.refresh);
      await expectRefreshRejected(first.body.refresh_token);
      await expectAccessRejected(first.body.access_token);
      await expectAccessRejected(again.body.access_token);
    });

    it.each([2, 5])('answers 200 to %i parallel refreshes of one token, all with the same successor, which then refreshes', async (parallel) => {
      const session = await signUp();
      const responses = await Promise.all(Array.from({ length: parallel }, () => refresh(session.refresh)));
      expect(responses.map((res) => res.status)).toEqual(Array(parallel).fill(200));
      const successors = new Set(responses.map((res) => res.body.refresh_token as string));
      expect(successors.size).toBe(1);
      for (const res of responses) {
        const tokens = tokensOf(res.body);
        expect(tokens.sid).toBe(session.sid);
        await me(tokens.access).expect(200);
      }

      const [successor] = successors;
      expect(successor).not.toBe(session.refresh);
      const next = await refreshOk(successor);
      await me(next.access).expect(200);
      expect((await listSessions(next.access)).map((s) => s.id)).toEqual([session.sid]);
    });

    it('answers 401 Invalid or expired refresh token for an unknown token, a tampered one and an access token', async () => {
      const session = await signUp();
      await expectRefreshRejected(randomBytes(32).toString('base64url'));
      await expectRefreshRejected(`${session.refresh.slice(0, -1)}${session.refresh.endsWith('A') ? 'B' : 'A'}`);
      await expectRefreshRejected(session.access);
      // The genuine token was not used up by those attempts.
      await refreshOk(session.refresh);
    });

    it('answers 403 User account is inactive for a deactivated account, and leaves the token unspent', async () => {
      const session = await signUp();
      const users = t.app.get(UsersService);
      await users.setActive(session.userId, false);
      expectProblem(await refresh(session.refresh), 403, AuthErrors.INACTIVE_USER);
      await users.setActive(session.userId, true);
      // Past the grace window: had the refused refresh spent the token, presenting it now would be reuse.
      t.advanceClock(GRACE_MS + 1_000);
      const next = await refreshOk(session.refresh);
      await me(next.access).expect(200);
    });

    it('does not take a refresh token as a bearer token', async () => {
      const session = await signUp();
      await expectAccessRejected(session.refresh);
      await refreshOk(session.refresh);
    });

    it.each<[string, unknown]>([
      ['a missing refresh_token', {}],
      ['a numeric refresh_token', { refresh_token: 12345 }],
      ['an array refresh_token', { refresh_token: ['abc'] }],
      ['an object refresh_token', { refresh_token: { token: 'abc' } }],
      ['a null refresh_token', { refresh_token: null }],
    ])('answers 422 naming refresh_token for %s', async (_name, body) => {
      const res = await t.http().post(`${AUTH}/refresh`).send(body as object);
      expectProblem(res, 422);
      expect((res.body.errors as { field: string }[]).map((e) => e.field)).toContain('refresh_token');
    });

    it('answers 422 for a body that is not an object', async () => {
      const res = await t.http().post(`${AUTH}/refresh`).set('Content-Type', 'application/json').send('["abc"]');
      expectProblem(res, 422);
    });
  });

  describe('sign-out', () => {
    it('POST /signout ends the current session only', async () => {
      const current = await signUp();
      const other = await signIn(current.account);

      const res = await signOut(current.access).expect(200);
      expect(res.body).toEqual({ message: SIGNED_OUT });

      await expectAccessRejected(current.access);
      await expectRefreshRejected(current.refresh);
      await me(other.access).expect(200);
      const next = await refreshOk(other.refresh);
      expect((await listSessions(next.access)).map((s) => s.id)).toEqual([other.sid]);
    });

    it('POST /signout ends a session whose access token came from a refresh', async () => {
      const session = await signUp();
      const next = await refreshOk(session.refresh);
      await signOut(next.access).expect(200);
      await expectAccessRejected(next.access);
      await expectAccessRejected(session.access);
      await expectRefreshRejected(next.refresh);
    });

    it('POST /signout-all ends every session of the user, and no one else\'s', async () => {
      const a = await signUp();
      const b = await signIn(a.account);
      const c = await signIn(a.account);
      const bystander = await signUp();

      const res = await signOutAll(b.access).expect(200);
      expect(res.body).toEqual({ message: SIGNED_OUT_ALL });

      for (const session of [a, b, c]) {
        await expectAccessRejected(session.access);
        await expectRefreshRejected(session.refresh);
      }
      await me(bystander.access).expect(200);
      await refreshOk(bystander.refresh);

      const again = await signIn(a.account);
      await me(again.access).expect(200);
      expect((await listSessions(again.access)).map((s) => s.id)).toEqual([again.sid]);
    });

    it('answers 401 to /signout, /signout-all and /sessions without a bearer token', async () => {
      expectProblem(await t.http().post(`${AUTH}/signout`), 401, AuthErrors.NOT_AUTHENTICATED);
      expectProblem(await t.http().post(`${AUTH}/signout-all`), 401, AuthErrors.NOT_AUTHENTICATED);
      expectProblem(await t.http().get(`${AUTH}/sessions`), 401, AuthErrors.NOT_AUTHENTICATED);
      expectProblem(await t.http().delete(`${AUTH}/sessions/${randomUUID()}`), 401, AuthErrors.NOT_AUTHENTICATED);
    });
  });

  describe('GET /sessions', () => {
    it('lists the live sessions of this user, marking the current one, with User-Agent and address and no token', async () => {
      const first = await signUp(t, 'Firefox/142 test');
      const second = await signIn(first.account, t, 'Chrome/140 test');
      const ended = await signIn(first.account, t, 'Safari/18 test');
      await signOut(ended.access).expect(200);
      const stranger = await signUp(t, 'Firefox/142 test');

      const res = await t.http().get(`${AUTH}/sessions`).auth(second.access, { type: 'bearer' }).expect(200);
      const sessions = res.body as SessionView[];
      expect(sessions).toHaveLength(2);
      const byId = new Map(sessions.map((s) => [s.id, s]));
      expect([...byId.keys()].sort()).toEqual([first.sid, second.sid].sort());
      for (const session of sessions) {
        expect(Object.keys(session).sort()).toEqual(['created_at', 'current', 'id', 'ip', 'last_used_at', 'user_agent']);
        expect(Number.isNaN(Date.parse(session.created_at))).toBe(false);
        expect(Number.isNaN(Date.parse(session.last_used_at))).toBe(false);
        expect(Date.parse(session.last_used_at)).toBeGreaterThanOrEqual(Date.parse(session.created_at));
        expect(session.ip).toMatch(LOOPBACK);
      }
      expect(byId.get(second.sid)).toMatchObject({ current: true, user_agent: 'Chrome/140 test' });
      expect(byId.get(first.sid)).toMatchObject({ current: false, user_agent: 'Firefox/142 test' });
      expect(sessions.filter((s) => s.current)).toHaveLength(1);

      const body = JSON.stringify(res.body);
      for (const session of [first, second, ended, stranger]) {
        expect(body).not.toContain(session.refresh);
        expect(body).not.toContain(sha256Hex(session.refresh));
        expect(body).not.toContain(session.access);
      }
      expect(body).not.toContain(stranger.sid);

      // Seen from the other session, the other one is current.
      const fromFirst = await listSessions(first.access);
      expect(fromFirst.filter((s) => s.current).map((s) => s.id)).toEqual([first.sid]);
    });

    it('keeps the session id across refreshes and moves last_used_at forward', async () => {
      const session = await signUp();
      const [before] = await listSessions(session.access);
      expect(before.id).toBe(session.sid);

      t.advanceClock(2_000);
      const next = await refreshOk(session.refresh);
      const after = await listSessions(next.access);
      expect(after).toHaveLength(1);
      expect(after[0]).toMatchObject({ id: session.sid, current: true, created_at: before.created_at });
      expect(Date.parse(after[0].last_used_at)).toBeGreaterThanOrEqual(Date.parse(before.last_used_at));
    });
  });

  describe('DELETE /sessions/:id', () => {
    it('ends that session of this user, and leaves the current one', async () => {
      const current = await signUp();
      const doomed = await signIn(current.account);

      const res = await endSession(current.access, doomed.sid).expect(200);
      expect(res.body).toEqual({ message: SESSION_ENDED });

      await expectAccessRejected(doomed.access);
      await expectRefreshRejected(doomed.refresh);
      await me(current.access).expect(200);
      expect((await listSessions(current.access)).map((s) => s.id)).toEqual([current.sid]);
      await refreshOk(current.refresh);
    });

    it('ends the current session when given its own id', async () => {
      const session = await signUp();
      await endSession(session.access, session.sid).expect(200);
      await expectAccessRejected(session.access);
      await expectRefreshRejected(session.refresh);
    });

    it("answers 404 Session not found for another user's session, which keeps working", async () => {
      const attacker = await signUp();
      const victim = await signUp();

      expectProblem(await endSession(attacker.access, victim.sid), 404, SESSION_NOT_FOUND);
      await me(victim.access).expect(200);
      const next = await refreshOk(victim.refresh);
      expect((await listSessions(next.access)).map((s) => s.id)).toEqual([victim.sid]);
    });

    it.each<[string, () => string]>([
      ['an unknown uuid', () => randomUUID()],
      ['a garbage id', () => 'not-a-session-id'],
      ['a number', () => '1'],
      ['SQL', () => "' OR '1'='1"],
    ])('answers 404 Session not found for %s', async (_name, id) => {
      const session = await signUp();
      expectProblem(await endSession(session.access, id()), 404, SESSION_NOT_FOUND);
      await me(session.access).expect(200);
    });

    it('answers 404 for a session that has already ended', async () => {
      const current = await signUp();
      const other = await signIn(current.account);
      await endSession(current.access, other.sid).expect(200);
      expectProblem(await endSession(current.access, other.sid), 404, SESSION_NOT_FOUND);
    });
  });

  describe('password changes end every session', () => {
    it('change-password: every earlier access and refresh token answers 401, a fresh sign-in works', async () => {
      const a = await signUp();
      const b = await signIn(a.account);
      const bRefreshed = await refreshOk(b.refresh);
      const bystander = await signUp();
      const newPassword = 'quite another passphrase 2';
      secrets.add(newPassword);

      const res = await t.http().post(`${AUTH}/change-password`).auth(a.access, { type: 'bearer' })
        .send({ old_password: a.account.password, new_password: newPassword }).expect(200);
      expect(res.body).toEqual({ message: AuthMessages.PASSWORD_CHANGED });

      for (const access of [a.access, b.access, bRefreshed.access]) await expectAccessRejected(access);
      for (const token of [a.refresh, bRefreshed.refresh]) await expectRefreshRejected(token);
      await me(bystander.access).expect(200);

      const fresh = await t.http().post(`${AUTH}/signin`).send({ email: a.account.email, password: newPassword }).expect(200);
      const tokens = tokensOf(fresh.body);
      await me(tokens.access).expect(200);
      expect((await listSessions(tokens.access)).map((s) => s.id)).toEqual([tokens.sid]);
      await refreshOk(tokens.refresh);
    });

    it('reset-password: every earlier access and refresh token answers 401, a fresh sign-in works', async () => {
      const a = await signUp();
      const b = await signIn(a.account);
      await t.http().post(`${AUTH}/forgot-password`).send({ email: a.account.email }).expect(200);
      const resetToken = tokenFromMail(await smtp.waitFor(a.account.email, (m) => m.subject.includes('Reset')));
      secrets.add(resetToken);
      const newPassword = 'reset to something new 3';
      secrets.add(newPassword);

      await t.http().post(`${AUTH}/reset-password`).send({ token: resetToken, new_password: newPassword }).expect(200);

      for (const session of [a, b]) {
        await expectAccessRejected(session.access);
        await expectRefreshRejected(session.refresh);
      }
      const fresh = await t.http().post(`${AUTH}/signin`).send({ email: a.account.email, password: newPassword }).expect(200);
      const tokens = tokensOf(fresh.body);
      await me(tokens.access).expect(200);
      await refreshOk(tokens.refresh);
    });
  });

  it('never logged a refresh token, its hash, an access token or a password', async () => {
    expect(secrets.size).toBeGreaterThan(50);
    const lines = apps.flatMap((app) => app.logs.lines);
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.filter((line) => [...secrets].some((secret) => line.includes(secret)))).toEqual([]);
  });
});

/**
 * Tests that move the clock by days or prune, each on an app and a database of its own: another app on a
 * shared database with such a clock would see (and its pruning might delete) every other test's sessions.
 * They are a block of their own because passport keeps strategies in one process-wide registry: the last
 * app started checks the access tokens of every app in the process, so the block's shared app could not
 * be used after one of these had started.
 */
describe.each(matrix(DATABASES))('session expiry and pruning on %s with %s', (databaseKind, adapter) => {
  let smtp: TestSmtpServer;
  /** Every app this block starts: a Nest logger override is process-wide, so lines may land in any of them. */
  const apps: TestApp[] = [];
  const databases: TestDatabase[] = [];
  const secrets = new Set<string>();
  let current: TestApp;

  const { tokensOf, signUp, signIn, refresh, refreshOk, expectRefreshRejected, me, expectAccessRejected, listSessions, signOut, signOutAll } =
    sessionHelpers(() => current, secrets);

  async function startAlone(env: Record<string, string> = {}): Promise<{ app: TestApp; database: TestDatabase }> {
    const own = await createTestDatabase(databaseKind);
    databases.push(own);
    current = await startTestApp({ adapter, databaseUrl: own.url, smtpUrl: smtp.url, env });
    apps.push(current);
    return { app: current, database: own };
  }

  beforeAll(async () => {
    smtp = await TestSmtpServer.start();
  });

  afterAll(async () => {
    for (const app of apps) await app.close();
    await smtp?.stop();
    for (const own of databases) await own.drop();
  });

  describe('session lifetime', () => {
    it('refreshes until REFRESH_TOKEN_EXPIRE_DAYS are over, then answers 401 and no longer lists the session', async () => {
      const { app } = await startAlone();
      const early = await signUp(app);
      const late = await signIn(early.account, app);

      app.advanceClock(REFRESH_TTL_DAYS * DAY_MS - 60_000);
      await refreshOk(early.refresh, app);

      app.advanceClock(2 * 60_000);
      expectProblem(await refresh(late.refresh, app), 401, INVALID_REFRESH_TOKEN);

      const fresh = await signIn(early.account, app);
      const sessions = await listSessions(fresh.access, app);
      expect(sessions.map((s) => s.id)).not.toContain(late.sid);
      expect(sessions.map((s) => s.id)).toContain(fresh.sid);
    });

    it('follows REFRESH_TOKEN_EXPIRE_DAYS and REFRESH_TOKEN_REUSE_GRACE_SECONDS', async () => {
      const { app } = await startAlone({ REFRESH_TOKEN_EXPIRE_DAYS: '7', REFRESH_TOKEN_REUSE_GRACE_SECONDS: '60' });
      const res = await app.http().post(`${AUTH}/signup`).send(newAccount()).expect(201);
      expect(res.body.refresh_expires_in).toBe(7 * 86_400);
      const session = tokensOf(res.body);

      const first = await refresh(session.refresh, app).expect(200);
      expect(first.body.refresh_expires_in).toBe(7 * 86_400);
      app.advanceClock(30_000);
      const again = await refresh(session.refresh, app).expect(200);
      expect(again.body.refresh_token).toBe(first.body.refresh_token);
      tokensOf(again.body);

      app.advanceClock(31_000);
      expectProblem(await refresh(session.refresh, app), 401, INVALID_REFRESH_TOKEN);
      await expectRefreshRejected(first.body.refresh_token, app);

      const other = await app.http().post(`${AUTH}/signup`).send(newAccount()).expect(201);
      app.advanceClock(7 * DAY_MS + 60_000);
      await expectRefreshRejected(tokensOf(other.body).refresh, app);
    });
  });

  describe('pruning', () => {
    const countSessions = async (db: TestDatabase) =>
      Number(((await sql(db, 'SELECT count(*) AS n FROM user_sessions')) as { n: number | string }[])[0].n);

    it('deletes expired and revoked sessions with their refresh tokens, and keeps live ones', async () => {
      const { app, database: own } = await startAlone();

      const expired = await signUp(app);
      const expiredNext = await refreshOk(expired.refresh, app);
      app.advanceClock(REFRESH_TTL_DAYS * DAY_MS + 60_000);

      const live = await signUp(app);
      const revoked = await signIn(live.account, app);
      await signOut(revoked.access, app).expect(200);
      const revokedAll = await signUp(app);
      const revokedAllSecond = await signIn(revokedAll.account, app);
      await signOutAll(revokedAll.access, app).expect(200);

      expect(await countSessions(own)).toBe(5);
      const hashesBefore = ((await sql(own, 'SELECT token_hash FROM refresh_tokens')) as { token_hash: string }[]).map((r) => r.token_hash);
      for (const token of [expired.refresh, expiredNext.refresh, live.refresh, revoked.refresh, revokedAll.refresh]) {
        expect(hashesBefore).toContain(sha256Hex(token));
      }

      await expect(app.app.get(SessionsService).prune()).resolves.toBe(4);

      const rows = (await sql(own, 'SELECT id FROM user_sessions')) as { id: string }[];
      expect(rows.map((r) => String(r.id))).toEqual([live.sid]);
      const hashesAfter = ((await sql(own, 'SELECT token_hash FROM refresh_tokens')) as { token_hash: string }[]).map((r) => r.token_hash);
      expect(hashesAfter).toEqual([sha256Hex(live.refresh)]);
      for (const session of [expired, revoked, revokedAll, revokedAllSecond]) {
        expect(hashesAfter).not.toContain(sha256Hex(session.refresh));
      }

      await expect(app.app.get(SessionsService).prune()).resolves.toBe(0);
      await me(live.access, app).expect(200);
      await refreshOk(live.refresh, app);
      expect(await countSessions(own)).toBe(1);
    });
  });

  describe('session cap', () => {
    it(`keeps at most ${MAX_SESSIONS_PER_USER} live sessions a user, ending the least recently used`, async () => {
      const { app } = await startAlone();
      const oldest = await signUp(app);
      const sessions = app.app.get(SessionsService);
      const transactions = app.app.get(TransactionRunner);
      // The others opened directly: a sign-in each would spend most of the test hashing.
      for (let i = 1; i < MAX_SESSIONS_PER_USER; i++) {
        app.advanceClock(1_000);
        await transactions.run((manager) => sessions.start(manager, oldest.userId, { userAgent: 'bulk', ip: null }));
      }
      await me(oldest.access, app).expect(200);

      app.advanceClock(1_000);
      const newest = await signIn(oldest.account, app);
      await expectAccessRejected(oldest.access, app);
      await expectRefreshRejected(oldest.refresh, app);
      const listed = await listSessions(newest.access, app);
      expect(listed).toHaveLength(MAX_SESSIONS_PER_USER);
      expect(listed[0]).toMatchObject({ id: newest.sid, current: true });
      expect(listed.map((session) => session.id)).not.toContain(oldest.sid);
    });
  });

  it('never logged a refresh token, its hash, an access token or a password', async () => {
    expect(secrets.size).toBeGreaterThan(20);
    const lines = apps.flatMap((app) => app.logs.lines);
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.filter((line) => [...secrets].some((secret) => line.includes(secret)))).toEqual([]);
  });
});
