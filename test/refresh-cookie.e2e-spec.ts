import { createHash, randomBytes } from 'node:crypto';
import { AuthErrors } from '../src/common/auth.errors';
import { createTestDatabase, DATABASES, sql, TestDatabase } from './support/databases';
import { expectProblem, newAccount, NewAccount } from './support/fixtures';
import { TestSmtpServer } from './support/smtp';
import { matrix, startTestApp, TestApp } from './support/test-app';

const AUTH = '/api/v1/auth';
const COOKIE_NAME = 'refresh_token';
const REFRESH_TTL_SECONDS = 30 * 86_400;
const GRACE_MS = 10_000;
const INVALID_REFRESH_TOKEN = 'Invalid or expired refresh token';
const REFRESH_TOKEN = /^[A-Za-z0-9_-]{43,}$/;

const ALLOWED_ORIGIN = 'https://app.example.test';

const sha256Hex = (value: string) => createHash('sha256').update(value).digest('hex');

const sidOf = (accessToken: string) =>
  (JSON.parse(Buffer.from(accessToken.split('.')[1], 'base64url').toString('utf8')) as { sid?: string }).sid;

interface SetCookie {
  name: string;
  value: string;
  /** Attribute names lower-cased; a flag (HttpOnly) maps to true. */
  attributes: Record<string, string | true>;
}

function setCookiesOf(res: { headers: Record<string, unknown> }): SetCookie[] {
  const header = res.headers['set-cookie'];
  const lines = header === undefined ? [] : Array.isArray(header) ? (header as string[]) : [String(header)];
  return lines.map((line) => {
    const [pair, ...attributes] = line.split(';').map((part) => part.trim());
    const eq = pair.indexOf('=');
    return {
      name: pair.slice(0, eq),
      value: pair.slice(eq + 1),
      attributes: Object.fromEntries(
        attributes.filter(Boolean).map((attribute) => {
          const at = attribute.indexOf('=');
          return at === -1 ? [attribute.toLowerCase(), true] : [attribute.slice(0, at).toLowerCase(), attribute.slice(at + 1)];
        }),
      ),
    };
  });
}

/** The one refresh_token cookie a response sets. */
function refreshCookieOf(res: { headers: Record<string, unknown> }): SetCookie {
  const cookies = setCookiesOf(res).filter((cookie) => cookie.name === COOKIE_NAME);
  expect(cookies).toHaveLength(1);
  return cookies[0];
}

/** Checks the cookie carries a refresh token with every attribute the contract asks for; returns the token. */
function expectRefreshCookie(res: { headers: Record<string, unknown> }, maxAgeSeconds: number): string {
  const cookie = refreshCookieOf(res);
  expect(cookie.value).toMatch(REFRESH_TOKEN);
  expect(cookie.attributes.httponly).toBe(true);
  expect(cookie.attributes.secure).toBe(true);
  expect(String(cookie.attributes.samesite).toLowerCase()).toBe('strict');
  expect(cookie.attributes.path).toBe(AUTH);
  expect(cookie.attributes['max-age']).toBe(String(maxAgeSeconds));
  return cookie.value;
}

/** A token response in cookie mode: everything but the refresh token, which is in the cookie only. */
function expectCookieModeBody(body: Record<string, unknown>, cookieValue: string, refreshTtlSeconds = REFRESH_TTL_SECONDS): void {
  expect(body).toMatchObject({ access_token: expect.any(String), token_type: 'bearer', expires_in: 1800, refresh_expires_in: refreshTtlSeconds });
  expect(body).not.toHaveProperty('refresh_token');
  expect(JSON.stringify(body)).not.toContain(cookieValue);
}

describe.each(matrix(DATABASES))('refresh token cookie on %s with %s', (databaseKind, adapter) => {
  let database: TestDatabase;
  let smtp: TestSmtpServer;
  let t: TestApp;
  /** Every app this block starts: a Nest logger override is process-wide, so lines may land in any of them. */
  const apps: TestApp[] = [];
  const secrets = new Set<string>();

  interface CookieSession {
    account: NewAccount;
    userId: number;
    access: string;
    cookie: string;
  }

  async function signUp(app: TestApp = t): Promise<CookieSession> {
    const account = newAccount();
    const res = await app.http().post(`${AUTH}/signup`).send(account).expect(201);
    const cookie = refreshCookieOf(res).value;
    secrets.add(account.password).add(res.body.access_token).add(cookie);
    return { account, userId: res.body.user.id as number, access: res.body.access_token as string, cookie };
  }

  const refreshWithCookie = (cookie: string, body: object = {}) =>
    t.http().post(`${AUTH}/refresh`).set('Cookie', `${COOKIE_NAME}=${cookie}`).send(body);

  const me = (access: string) => t.http().get(`${AUTH}/me`).auth(access, { type: 'bearer' });

  beforeAll(async () => {
    database = await createTestDatabase(databaseKind);
    smtp = await TestSmtpServer.start();
    t = await startTestApp({
      adapter,
      databaseUrl: database.url,
      smtpUrl: smtp.url,
      env: { REFRESH_TOKEN_COOKIE: 'true', CORS_ORIGINS: ALLOWED_ORIGIN },
    });
    apps.push(t);
  });

  afterAll(async () => {
    for (const app of apps) await app.close();
    await smtp?.stop();
    await database?.drop();
  });

  it('lets the allowed origin send the cookie (CORS credentials), and no other origin', async () => {
    const preflight = (origin: string) =>
      t.http().options(`${AUTH}/refresh`).set('Origin', origin).set('Access-Control-Request-Method', 'POST')
        .set('Access-Control-Request-Headers', 'content-type');
    const allowed = await preflight(ALLOWED_ORIGIN);
    expect(allowed.status).toBeLessThan(300);
    expect(allowed.headers['access-control-allow-origin']).toBe(ALLOWED_ORIGIN);
    expect(allowed.headers['access-control-allow-credentials']).toBe('true');
    const other = await preflight('https://evil.example');
    expect(other.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('sign-up sets the refresh token as an HttpOnly, Secure, SameSite=Strict cookie on /api/v1/auth, not in the body', async () => {
    const account = newAccount();
    const res = await t.http().post(`${AUTH}/signup`).send(account).expect(201);
    const cookie = expectRefreshCookie(res, REFRESH_TTL_SECONDS);
    secrets.add(cookie).add(res.body.access_token);
    expectCookieModeBody(res.body, cookie);
    expect(res.body.user).toMatchObject({ email: account.email });

    // The cookie's value is the refresh token: it is what the database holds the hash of.
    const hashes = ((await sql(database, 'SELECT token_hash FROM refresh_tokens')) as { token_hash: string }[]).map((r) => r.token_hash);
    expect(hashes).toContain(sha256Hex(cookie));
  });

  it('sign-in sets the cookie the same way, with a token of a new session', async () => {
    const first = await signUp();
    const res = await t.http().post(`${AUTH}/signin`).send({ email: first.account.email, password: first.account.password }).expect(200);
    const cookie = expectRefreshCookie(res, REFRESH_TTL_SECONDS);
    secrets.add(cookie).add(res.body.access_token);
    expectCookieModeBody(res.body, cookie);
    expect(cookie).not.toBe(first.cookie);
    expect(sidOf(res.body.access_token)).not.toBe(sidOf(first.access));
  });

  it('POST /refresh with the cookie and an empty body answers a new access token and a new cookie', async () => {
    const session = await signUp();
    const res = await refreshWithCookie(session.cookie);
    expect(res.status).toBe(200);
    const next = expectRefreshCookie(res, res.body.refresh_expires_in as number);
    secrets.add(next).add(res.body.access_token);
    expectCookieModeBody(res.body, next);
    expect(next).not.toBe(session.cookie);

    const meRes = await me(res.body.access_token).expect(200);
    expect(meRes.body).toMatchObject({ id: session.userId });
    expect(sidOf(res.body.access_token)).toBe(sidOf(session.access));

    // The new cookie refreshes in turn.
    const again = await refreshWithCookie(next).expect(200);
    const third = expectRefreshCookie(again, again.body.refresh_expires_in as number);
    secrets.add(third).add(again.body.access_token);
    expect(third).not.toBe(next);
  });

  it('finds the cookie among others a browser sends', async () => {
    const session = await signUp();
    const res = await t.http().post(`${AUTH}/refresh`)
      .set('Cookie', `theme=dark; ${COOKIE_NAME}=${session.cookie}; lang=en`)
      .send({});
    expect(res.status).toBe(200);
    const next = refreshCookieOf(res).value;
    secrets.add(next).add(res.body.access_token);
    expect(next).not.toBe(session.cookie);
    await me(res.body.access_token).expect(200);
  });

  it('answers 401 Invalid or expired refresh token without a cookie or with an unknown one', async () => {
    expectProblem(await t.http().post(`${AUTH}/refresh`).send({}), 401, INVALID_REFRESH_TOKEN);
    expectProblem(await t.http().post(`${AUTH}/refresh`).set('Cookie', 'theme=dark').send({}), 401, INVALID_REFRESH_TOKEN);
    expectProblem(await refreshWithCookie(randomBytes(32).toString('base64url')), 401, INVALID_REFRESH_TOKEN);
    expectProblem(await refreshWithCookie(''), 401, INVALID_REFRESH_TOKEN);
  });

  it('keeps rotation and reuse detection: the spent cookie within the grace window gets the same successor, after it 401 and the session ends', async () => {
    const session = await signUp();
    const first = await refreshWithCookie(session.cookie).expect(200);
    const successor = refreshCookieOf(first).value;
    secrets.add(successor).add(first.body.access_token);

    const again = await refreshWithCookie(session.cookie).expect(200);
    expect(refreshCookieOf(again).value).toBe(successor);
    secrets.add(again.body.access_token);

    t.advanceClock(GRACE_MS + 1_000);
    expectProblem(await refreshWithCookie(session.cookie), 401, INVALID_REFRESH_TOKEN);
    expectProblem(await refreshWithCookie(successor), 401, INVALID_REFRESH_TOKEN);
    expectProblem(await me(first.body.access_token), 401, AuthErrors.INVALID_ACCESS_TOKEN);
  });

  it('POST /signout clears the cookie and ends the session', async () => {
    const session = await signUp();
    const other = await signUp();
    const res = await t.http().post(`${AUTH}/signout`)
      .auth(session.access, { type: 'bearer' })
      .set('Cookie', `${COOKIE_NAME}=${session.cookie}`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ message: 'Signed out successfully' });

    const cleared = refreshCookieOf(res);
    expect(cleared.value).toBe('');
    expect(cleared.attributes['max-age']).toBe('0');
    expect(cleared.attributes.path).toBe(AUTH);

    expectProblem(await refreshWithCookie(session.cookie), 401, INVALID_REFRESH_TOKEN);
    expectProblem(await me(session.access), 401, AuthErrors.INVALID_ACCESS_TOKEN);
    await refreshWithCookie(other.cookie).expect(200);
  });

  it('DELETE /me clears the cookie, and the refresh token in it is refused', async () => {
    const session = await signUp();
    const res = await t.http().delete(`${AUTH}/me`)
      .auth(session.access, { type: 'bearer' })
      .set('Cookie', `${COOKIE_NAME}=${session.cookie}`)
      .send({ password: session.account.password });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ message: 'Account deleted' });
    const cleared = refreshCookieOf(res);
    expect(cleared.value).toBe('');
    expect(cleared.attributes['max-age']).toBe('0');
    expectProblem(await refreshWithCookie(session.cookie), 401, INVALID_REFRESH_TOKEN);
  });

  it('sets Max-Age from REFRESH_TOKEN_EXPIRE_DAYS', async () => {
    const app = await startTestApp({
      adapter,
      databaseUrl: database.url,
      smtpUrl: smtp.url,
      env: { REFRESH_TOKEN_COOKIE: 'true', REFRESH_TOKEN_EXPIRE_DAYS: '7' },
    });
    apps.push(app);
    try {
      const res = await app.http().post(`${AUTH}/signup`).send(newAccount()).expect(201);
      const cookie = expectRefreshCookie(res, 7 * 86_400);
      secrets.add(cookie).add(res.body.access_token);
      expectCookieModeBody(res.body, cookie, 7 * 86_400);
    } finally {
      // Passport's strategy registry is process-wide: this app, started last, now checks every access token.
      await app.close();
    }
  });

  it('never logged a refresh token, an access token or a password', () => {
    expect(secrets.size).toBeGreaterThan(15);
    const lines = apps.flatMap((app) => app.logs.lines);
    expect(lines.filter((line) => [...secrets].some((secret) => line.includes(secret)))).toEqual([]);
  });
});
