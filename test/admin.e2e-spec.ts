import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AdminService } from '../src/auth/admin.service';
import { AuthErrors } from '../src/common/auth.errors';
import { base32Decode, hotp, stepAt, TOTP_STEP_SECONDS } from '../src/mfa/totp';
import { createTestDatabase, DATABASES, sql, TestDatabase } from './support/databases';
import { expectProblem, newAccount, SignedUp, signUp } from './support/fixtures';
import { REDIS_MISSING, TEST_REDIS_URL } from './support/redis';
import { TestSmtpServer } from './support/smtp';
import { matrix, startTestApp, TEST_JWT_SECRET, TestApp, useTestApp } from './support/test-app';

const AUTH = '/api/v1/auth';
const ADMIN = `${AUTH}/admin`;
const CLI_JS = join(__dirname, '..', 'dist', 'src', 'app', 'cli.js');

type PageBody = { body: { items: { id: number }[]; next_cursor: string | null } };

const claimsOf = (token: string) => JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));

function cli(databaseUrl: string, ...args: string[]): Promise<{ status: number | null; out: string }> {
  return cliWith({ DATABASE_URL: databaseUrl }, ...args);
}

/**
 * Runs the operator's CLI as its own process. Asynchronously: the apps under test run in this process,
 * and one blocked in spawnSync keeps whatever transaction it had open (a verification token's insert, which
 * locks the account's row) until the CLI's own lock on that row gives up (seen as a 1.5 s statement timeout).
 */
async function cliWith(env: Record<string, string>, ...args: string[]): Promise<{ status: number | null; out: string }> {
  const cwd = mkdtempSync(join(tmpdir(), 'auth-cli-'));
  try {
    return await new Promise((resolve) => {
      const options = { cwd, env: { PATH: process.env.PATH ?? '', JWT_SECRET: TEST_JWT_SECRET, ...env }, encoding: 'utf8' as const, timeout: 30_000 };
      execFile(process.execPath, [CLI_JS, ...args], options, (error, stdout, stderr) => {
        const status = error ? (typeof error.code === 'number' ? error.code : null) : 0;
        resolve({ status, out: `${stdout}${stderr}`.trim() });
      });
    });
  } finally {
    rmSync(cwd, { recursive: true, force: true });
  }
}

/** An account with the admin role, granted the way an operator grants it, and a fresh token. */
async function admin(t: TestApp): Promise<SignedUp> {
  const user = await signUp(t.http);
  await t.app.get(AdminService).changeRoleByEmail(user.account.email, 'admin', true);
  const signin = await t.http().post(`${AUTH}/signin`).send(user.account).expect(200);
  return { ...user, token: signin.body.access_token };
}

describe.each(matrix(DATABASES))('admin API on %s with %s', (databaseKind, adapter) => {
  const { t, database } = useTestApp(databaseKind, { adapter, env: { USER_CACHE_TTL_SECONDS: '60' } });
  const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

  it('makes the first admin from the command line; roles travel in tokens and UserResponse', async () => {
    const user = await signUp(t.http);
    expect(await cli(database.url, 'grant-role', user.account.email, 'admin')).toEqual({
      status: 0,
      out: `granted the role admin to ${user.account.email}: in effect on every instance from its next request`,
    });
    expect(await cli(database.url, 'grant-role', user.account.email, 'admin')).toMatchObject({ status: 0, out: expect.stringContaining('already has') });
    expect(await cli(database.url, 'grant-role', 'nobody@example.com', 'admin')).toMatchObject({ status: 1, out: 'no account with the email nobody@example.com' });
    expect(await cli(database.url, 'grant-role', user.account.email, 'Not A Role')).toMatchObject({ status: 1 });
    const signin = await t.http().post(`${AUTH}/signin`).send(user.account).expect(200);
    expect(signin.body.user.roles).toEqual(['admin']);
    expect(claimsOf(signin.body.access_token).roles).toEqual(['admin']);
    await t.http().get(`${ADMIN}/users`).set(bearer(signin.body.access_token)).expect(200);
    expect(await cli(database.url, 'revoke-role', user.account.email, 'admin')).toMatchObject({ status: 0, out: expect.stringContaining('revoked the role admin') });
    const events = (await sql(database, "SELECT type, details FROM auth_events WHERE user_id = $1 AND type LIKE 'role_%' ORDER BY id", [user.userId])) as { type: string; details: string }[];
    expect(events.map((e) => [e.type, JSON.parse(e.details)])).toEqual([
      ['role_granted', { role: 'admin', actor: 'cli' }],
      ['role_revoked', { role: 'admin', actor: 'cli' }],
    ]);
  });

  it('answers 403 Insufficient role to a user without the role, and asks an admin with TOTP for aal2', async () => {
    const plain = await signUp(t.http);
    for (const path of ['/users', '/users/1', '/events']) expectProblem(await t.http().get(`${ADMIN}${path}`).set(bearer(plain.token)), 403, AuthErrors.INSUFFICIENT_ROLE);
    expectProblem(await t.http().post(`${ADMIN}/users/1/lock`).set(bearer(plain.token)), 403, AuthErrors.INSUFFICIENT_ROLE);

    const boss = await admin(t);
    const setup = await t.http().post(`${AUTH}/mfa/totp/setup`).set(bearer(boss.token)).expect(200);
    const secret = base32Decode(setup.body.secret);
    await t.http().post(`${AUTH}/mfa/totp/confirm`).set(bearer(boss.token)).send({ code: hotp(secret, stepAt(Date.now())) }).expect(200);
    expectProblem(await t.http().get(`${ADMIN}/users`).set(bearer(boss.token)), 403, AuthErrors.ADDITIONAL_AUTH_REQUIRED);
    t.advanceClock(TOTP_STEP_SECONDS * 1000);
    const challenge = await t.http().post(`${AUTH}/signin`).send(boss.account).expect(403);
    const aal2 = await t.http().post(`${AUTH}/signin/mfa`).send({ mfa_token: challenge.body.mfa_token, code: hotp(secret, stepAt(Date.now() + TOTP_STEP_SECONDS * 1000)) }).expect(200);
    await t.http().get(`${ADMIN}/users`).set(bearer(aal2.body.access_token)).expect(200);
  });

  it('pages and searches users by the start of the email or username, without skips or repeats', async () => {
    const boss = await admin(t);
    const tag = `pg${process.pid}${Date.now() % 100000}`;
    const made: SignedUp[] = [];
    for (let i = 0; i < 5; i++) made.push(await signUp(t.http, { email: `${tag}-${i}@example.com`, username: `u${tag}${i}` }));
    const ids: number[] = [];
    let cursor: string | null = '';
    while (cursor !== null) {
      const page: PageBody = await t.http().get(`${ADMIN}/users`).query({ query: tag, limit: 2, ...(cursor ? { cursor } : {}) }).set(bearer(boss.token)).expect(200);
      expect(page.body.items.length).toBeLessThanOrEqual(2);
      ids.push(...page.body.items.map((u: { id: number }) => u.id));
      cursor = page.body.next_cursor;
    }
    expect(ids).toEqual(made.map((u) => u.userId));
    const byUsername = await t.http().get(`${ADMIN}/users`).query({ query: `U${tag}3` }).set(bearer(boss.token)).expect(200);
    expect(byUsername.body.items.map((u: { id: number }) => u.id)).toEqual([made[3].userId]);
    // LIKE's wildcards are taken literally.
    expect((await t.http().get(`${ADMIN}/users`).query({ query: '%' }).set(bearer(boss.token)).expect(200)).body.items).toEqual([]);
    expect((await t.http().get(`${ADMIN}/users`).query({ query: `${tag}_` }).set(bearer(boss.token)).expect(200)).body.items).toEqual([]);
    const one = await t.http().get(`${ADMIN}/users/${made[0].userId}`).set(bearer(boss.token)).expect(200);
    expect(one.body).toMatchObject({ id: made[0].userId, email: made[0].account.email, roles: [] });
    expect(one.body).not.toHaveProperty('hashed_password');
    expectProblem(await t.http().get(`${ADMIN}/users/999999`).set(bearer(boss.token)), 404, AuthErrors.USER_NOT_FOUND);
    expectProblem(await t.http().get(`${ADMIN}/users/abc`).set(bearer(boss.token)), 404, AuthErrors.USER_NOT_FOUND);
    expectProblem(await t.http().get(`${ADMIN}/users?limit=101`).set(bearer(boss.token)), 422);
  });

  it('locks (sessions end, sign-in refused), unlocks, signs out everywhere, and records each with the admin', async () => {
    const boss = await admin(t);
    const user = await signUp(t.http);
    await t.http().get(`${AUTH}/me`).set(bearer(user.token)).expect(200); // cached for 60 s
    expect((await t.http().post(`${ADMIN}/users/${user.userId}/lock`).set(bearer(boss.token)).expect(200)).body).toEqual({ message: 'User locked' });
    expectProblem(await t.http().get(`${AUTH}/me`).set(bearer(user.token)), 401);
    expectProblem(await t.http().post(`${AUTH}/signin`).send(user.account), 403, AuthErrors.INACTIVE_USER);
    await t.http().post(`${ADMIN}/users/${user.userId}/unlock`).set(bearer(boss.token)).expect(200);
    const again = await t.http().post(`${AUTH}/signin`).send(user.account).expect(200);
    await t.http().get(`${AUTH}/me`).set(bearer(again.body.access_token)).expect(200);
    await t.http().post(`${ADMIN}/users/${user.userId}/signout-all`).set(bearer(boss.token)).expect(200);
    expectProblem(await t.http().get(`${AUTH}/me`).set(bearer(again.body.access_token)), 401);
    expectProblem(await t.http().post(`${ADMIN}/users/999999/lock`).set(bearer(boss.token)), 404, AuthErrors.USER_NOT_FOUND);

    const events = await t.http().get(`${ADMIN}/events`).query({ user_id: user.userId }).set(bearer(boss.token)).expect(200);
    const types = events.body.items.map((e: { type: string }) => e.type);
    expect(types.slice(0, 5)).toEqual(['signout', 'signin', 'user_unlocked', 'signin_failed', 'user_locked']);
    expect(events.body.items[0].details).toEqual({ scope: 'all', actor_id: boss.userId });
    expect(events.body.items[3].details).toEqual({ reason: 'inactive' });
    expect(events.body.items[4].details).toEqual({ actor_id: boss.userId });
  });

  it('changes roles: in effect on the next request, one event per role', async () => {
    const boss = await admin(t);
    const user = await signUp(t.http);
    expectProblem(await t.http().get(`${ADMIN}/users`).set(bearer(user.token)), 403, AuthErrors.INSUFFICIENT_ROLE);
    const granted = await t.http().put(`${ADMIN}/users/${user.userId}/roles`).set(bearer(boss.token)).send({ roles: ['admin', 'support'] }).expect(200);
    expect(granted.body.roles).toEqual(['admin', 'support']);
    // The same token, no refresh: the guard reads the stored roles.
    await t.http().get(`${ADMIN}/users`).set(bearer(user.token)).expect(200);
    await t.http().put(`${ADMIN}/users/${user.userId}/roles`).set(bearer(boss.token)).send({ roles: ['support'] }).expect(200);
    expectProblem(await t.http().get(`${ADMIN}/users`).set(bearer(user.token)), 403, AuthErrors.INSUFFICIENT_ROLE);
    expectProblem(await t.http().put(`${ADMIN}/users/${user.userId}/roles`).set(bearer(boss.token)).send({ roles: ['Has Space'] }), 422);
    const events = await t.http().get(`${ADMIN}/events`).query({ user_id: user.userId, type: 'role_granted' }).set(bearer(boss.token)).expect(200);
    expect(events.body.items.map((e: { details: { role: string } }) => e.details.role).sort()).toEqual(['admin', 'support']);
    const revoked = await t.http().get(`${ADMIN}/events`).query({ user_id: user.userId, type: 'role_revoked' }).set(bearer(boss.token)).expect(200);
    expect(revoked.body.items).toEqual([expect.objectContaining({ details: { role: 'admin', actor_id: boss.userId } })]);
  });

  it('filters events by time', async () => {
    const boss = await admin(t);
    const user = await signUp(t.http);
    const middle = new Date(Date.now() + 60_000);
    t.advanceClock(120_000);
    await t.http().post(`${AUTH}/signin`).send({ ...user.account, password: 'wrong password here' }).expect(401);
    const later = await t.http().get(`${ADMIN}/events`).query({ user_id: user.userId, from: middle.toISOString() }).set(bearer(boss.token)).expect(200);
    expect(later.body.items.map((e: { type: string }) => e.type)).toEqual(['signin_failed']);
    const earlier = await t.http().get(`${ADMIN}/events`).query({ user_id: user.userId, to: middle.toISOString() }).set(bearer(boss.token)).expect(200);
    expect(earlier.body.items.map((e: { type: string }) => e.type)).toEqual(['signup']);
    expectProblem(await t.http().get(`${ADMIN}/events?from=yesterday`).set(bearer(boss.token)), 422);
  });

  it('pages events with a cursor that never skips or repeats a row while new events arrive', async () => {
    const boss = await admin(t);
    const users = await Promise.all(Array.from({ length: 3 }, () => signUp(t.http)));
    for (let i = 0; i < 20; i++) {
      const { account } = users[i % users.length];
      await t.http().post(`${AUTH}/signin`).send({ ...account, password: `wrong password ${i}` }).expect(401);
    }
    let writing = true;
    const writer = (async () => {
      let i = 0;
      while (writing) {
        const { account } = users[i++ % users.length];
        await Promise.all([
          t.http().post(`${AUTH}/signin`).send({ ...account, password: `concurrent wrong ${i}` }),
          t.http().post(`${AUTH}/signup`).send(newAccount()),
        ]);
      }
      return i;
    })();
    const seen: number[] = [];
    let cursor: string | null = '';
    let pages = 0;
    try {
      while (cursor !== null) {
        const page: PageBody = await t.http().get(`${ADMIN}/events`).query({ limit: 7, ...(cursor ? { cursor } : {}) }).set(bearer(boss.token)).expect(200);
        seen.push(...page.body.items.map((e: { id: number }) => e.id));
        cursor = page.body.next_cursor;
        pages += 1;
        await new Promise((resolve) => setTimeout(resolve, 5)); // let writes land between pages
      }
    } finally {
      writing = false;
    }
    const written = await writer;
    expect(written).toBeGreaterThan(0);
    expect(pages).toBeGreaterThan(3);
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen).toEqual([...seen].sort((a, b) => b - a));
    // Every event at or below the newest one seen: the listing as of its first page, with nothing missing.
    const expected = ((await sql(database, 'SELECT id FROM auth_events WHERE id <= $1 ORDER BY id DESC', [seen[0]])) as { id: number | string }[]).map((r) => Number(r.id));
    expect(seen).toEqual(expected);
  });
});

(DATABASES.includes('postgres') && !REDIS_MISSING ? describe : describe.skip)('admin changes across two instances sharing Redis', () => {
  let database: TestDatabase;
  let smtp: TestSmtpServer;
  let a: TestApp;
  let b: TestApp;
  const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

  beforeAll(async () => {
    database = await createTestDatabase('postgres');
    smtp = await TestSmtpServer.start();
    const env = { USER_CACHE_TTL_SECONDS: '60', REDIS_URL: TEST_REDIS_URL };
    a = await startTestApp({ adapter: 'fastify', databaseUrl: database.url, smtpUrl: smtp.url, env });
    b = await startTestApp({ adapter: 'express', databaseUrl: database.url, smtpUrl: smtp.url, env });
  });

  afterAll(async () => {
    await a?.close();
    await b?.close();
    await smtp?.stop();
    await database?.drop();
  });

  /** B's status for GET `path` with `token`, asked until it is no longer `from` or a second has passed. */
  async function statusOnBOnceChanged(path: string, token: string, from = 200): Promise<number> {
    const deadline = Date.now() + 1000;
    let status = from;
    while (status === from && Date.now() < deadline) status = (await b.http().get(path).set(bearer(token))).status;
    return status;
  }

  it('a lock on one instance is refused on the other at its next request', async () => {
    const boss = await admin(a);
    const user = await signUp(a.http);
    await b.http().get(`${AUTH}/me`).set(bearer(user.token)).expect(200); // cached on B for 60 s
    await a.http().post(`${ADMIN}/users/${user.userId}/lock`).set(bearer(boss.token)).expect(200);
    expect(await statusOnBOnceChanged(`${AUTH}/me`, user.token)).toBe(401);
  });

  it("an admin's sign-out-all on one instance ends the user's tokens on the other", async () => {
    const boss = await admin(a);
    const user = await signUp(a.http);
    await b.http().get(`${AUTH}/me`).set(bearer(user.token)).expect(200);
    await a.http().post(`${ADMIN}/users/${user.userId}/signout-all`).set(bearer(boss.token)).expect(200);
    expect(await statusOnBOnceChanged(`${AUTH}/me`, user.token)).toBe(401);
  });

  it('a role granted from the command line holds on both instances at their next request', async () => {
    const user = await signUp(a.http);
    expect((await b.http().get(`${ADMIN}/users`).set(bearer(user.token))).status).toBe(403); // cached on B for 60 s
    expect((await a.http().get(`${ADMIN}/users`).set(bearer(user.token))).status).toBe(403); // and on A
    // The whole result on failure: what the command printed says why.
    const granted = await cliWith({ DATABASE_URL: database.url, REDIS_URL: TEST_REDIS_URL }, 'grant-role', user.account.email, 'admin');
    expect(granted.status === 0 ? 'exit 0' : `exit ${granted.status}: ${granted.out}`).toBe('exit 0');
    expect(await statusOnBOnceChanged(`${ADMIN}/users`, user.token, 403)).toBe(200);
    expect((await a.http().get(`${ADMIN}/users`).set(bearer(user.token))).status).toBe(200);
  });

  it('a role granted or revoked on one instance holds on the other at its next request', async () => {
    const boss = await admin(a);
    const user = await signUp(a.http);
    expect((await b.http().get(`${ADMIN}/users`).set(bearer(user.token))).status).toBe(403); // cached on B
    await a.http().put(`${ADMIN}/users/${user.userId}/roles`).set(bearer(boss.token)).send({ roles: ['admin'] }).expect(200);
    expect(await statusOnBOnceChanged(`${ADMIN}/users`, user.token, 403)).toBe(200);
    await a.http().put(`${ADMIN}/users/${user.userId}/roles`).set(bearer(boss.token)).send({ roles: [] }).expect(200);
    expect(await statusOnBOnceChanged(`${ADMIN}/users`, user.token, 200)).toBe(403);
  });
});
