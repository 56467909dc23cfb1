import { AuthErrors } from '../src/common/auth.errors';
import { base32Decode, hotp, stepAt } from '../src/mfa/totp';
import { createTestDatabase, DATABASES, sql, TestDatabase } from './support/databases';
import { expectProblem, newAccount, SignedUp, signUp } from './support/fixtures';
import { REDIS_MISSING, TEST_REDIS_URL } from './support/redis';
import { TestSmtpServer, tokenFromMail } from './support/smtp';
import { matrix, startTestApp, TestApp, useTestApp } from './support/test-app';

const AUTH = '/api/v1/auth';
const MINUTE = 60_000;
const GOODBYE = /account was deleted/;

const TABLES = {
  postgres: "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
  sqlite: "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
};

/** Every row of every table of the database, as one string: what a search of the whole database finds. */
async function wholeDatabase(database: TestDatabase): Promise<string> {
  const tables = (await sql(database, TABLES[database.kind])) as { name: string }[];
  const names = tables.map((table) => table.name).sort();
  // Rows sorted too: an update rolled back may leave PostgreSQL returning them in another order.
  const dumps = await Promise.all(names.map(async (name) => `${name}: ${((await sql(database, `SELECT * FROM "${name}"`)) as unknown[]).map((row) => JSON.stringify(row)).sort().join(', ')}`));
  return dumps.join('\n');
}

describe.each(matrix(DATABASES))('account deletion and export on %s with %s', (databaseKind, adapter) => {
  const { t, database, smtp } = useTestApp(databaseKind, { adapter, env: { USER_CACHE_TTL_SECONDS: '5', SIGNIN_MAX_FAILURES: '3' } });
  let offsetMs = 0;
  const advance = (ms: number) => {
    offsetMs += ms;
    t.advanceClock(ms);
  };
  const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });
  const me = (token: string) => t.http().get(`${AUTH}/me`).set(bearer(token));
  const deleteMe = (token: string, body?: object) => {
    const req = t.http().delete(`${AUTH}/me`).set(bearer(token));
    return body === undefined ? req : req.send(body);
  };
  const rowsOf = async (table: string, userId: number) => (await sql(database, `SELECT * FROM ${table} WHERE user_id = $1`, [userId])).length;
  const USER_TABLES = ['user_sessions', 'password_reset_tokens', 'email_verification_tokens', 'email_change_tokens', 'totp_factors', 'recovery_codes', 'mfa_challenges', 'mail_outbox', 'identities'];

  /** An identity at a provider, as a callback links it (the OIDC suites drive the real flow). */
  async function linkIdentity(user: SignedUp, provider = 'example'): Promise<void> {
    await sql(database, 'INSERT INTO identities (user_id, issuer, subject, provider, email, created_at) VALUES ($1, $2, $3, $4, $5, $6)', [
      user.userId,
      'https://idp.example.com',
      `sub-${user.userId}`,
      provider,
      user.account.email,
      databaseKind === 'postgres' ? new Date().toISOString() : new Date().toISOString().replace('T', ' ').replace('Z', ''),
    ]);
  }

  /** TOTP on, and a session that showed it (`aal2`); a pending mfa_token left behind too. */
  async function withSecondFactor(user: SignedUp): Promise<{ aal2: string; refresh: string }> {
    const setup = await t.http().post(`${AUTH}/mfa/totp/setup`).set(bearer(user.token)).expect(200);
    const secret = base32Decode(setup.body.secret);
    const code = (offset: number) => hotp(secret, stepAt(Date.now() + offsetMs) + offset);
    await t.http().post(`${AUTH}/mfa/totp/confirm`).set(bearer(user.token)).send({ code: code(-1) }).expect(200);
    const challenge = await t.http().post(`${AUTH}/signin`).send(user.account).expect(403);
    const signedIn = await t.http().post(`${AUTH}/signin/mfa`).send({ mfa_token: challenge.body.mfa_token, code: code(0) }).expect(200);
    await t.http().post(`${AUTH}/signin`).send(user.account).expect(403); // an mfa_token left unused
    return { aal2: signedIn.body.access_token, refresh: signedIn.body.refresh_token };
  }

  describe('DELETE /me', () => {
    it('deletes everything of the account at once, keeps its events without client addresses, and mails a goodbye that then leaves no trace', async () => {
      const user = await signUp(t.http);
      const { aal2, refresh } = await withSecondFactor(user);
      // One row in every table that can hold some of the account.
      await t.http().post(`${AUTH}/forgot-password`).send({ email: user.account.email }).expect(200);
      await t.http().post(`${AUTH}/resend-verification`).send({ email: user.account.email }).expect(200);
      await t.http().post(`${AUTH}/change-email`).set(bearer(aal2)).send({ new_email: newAccount().email, password: user.account.password }).expect(200);
      await linkIdentity(user);
      await t.drainMail();
      for (const table of USER_TABLES) expect([table, await rowsOf(table, user.userId)]).not.toEqual([table, 0]);
      expect(await wholeDatabase(database)).toContain(user.account.email);

      expect((await deleteMe(aal2, { password: user.account.password }).expect(200)).body).toEqual({ message: 'Account deleted' });

      for (const table of [...USER_TABLES, 'users']) {
        const column = table === 'users' ? 'id' : 'user_id';
        expect([table, (await sql(database, `SELECT * FROM ${table} WHERE ${column} = $1`, [user.userId])).length]).toEqual([table, 0]);
      }
      expect(await sql(database, 'SELECT * FROM refresh_tokens WHERE session_id NOT IN (SELECT id FROM user_sessions)')).toEqual([]);
      const events = (await sql(database, 'SELECT type, ip, user_agent, details FROM auth_events WHERE user_id = $1 ORDER BY id', [user.userId])) as {
        type: string;
        ip: string | null;
        user_agent: string | null;
      }[];
      expect(events.map((e) => e.type)).toEqual(expect.arrayContaining(['signup', 'signin', 'mfa_enabled', 'email_change_requested', 'account_deleted']));
      expect(events.filter((e) => e.ip !== null || e.user_agent !== null)).toEqual([]);

      // Every token of the account is refused at once, and the address signs in no more.
      expectProblem(await me(aal2), 401, AuthErrors.INVALID_ACCESS_TOKEN);
      expectProblem(await me(user.token), 401, AuthErrors.INVALID_ACCESS_TOKEN);
      expectProblem(await t.http().post(`${AUTH}/refresh`).send({ refresh_token: refresh }), 401, AuthErrors.INVALID_REFRESH_TOKEN);
      expectProblem(await t.http().post(`${AUTH}/signin`).send(user.account), 401, AuthErrors.INVALID_CREDENTIALS);

      const goodbye = await smtp.waitFor(user.account.email, (m) => GOODBYE.test(m.subject));
      expect(goodbye.text).not.toMatch(/https?:\/\//);
      await t.drainMail();
      // Sent: its row is gone, and with it the last copy of the address.
      expect(await wholeDatabase(database)).not.toContain(user.account.email);
      expect(t.logs.lines.join('\n')).not.toContain(user.account.email);

      // The address may sign up again, as a new account that sees none of the old one's history.
      const again = await signUp(t.http, { email: user.account.email });
      expect(again.userId).not.toBe(user.userId);
      const history = (await t.http().get(`${AUTH}/events`).set(bearer(again.token)).expect(200)).body.items as { type: string }[];
      expect(history.map((e) => e.type)).toEqual(['signup']);
    });

    it('needs the password: 400 for a wrong one, counted like a failed sign-in (429 past the limit), 422 without one; nothing is deleted', async () => {
      const user = await signUp(t.http);
      expectProblem(await deleteMe(user.token, {}), 422, 'Request validation failed');
      expectProblem(await deleteMe(user.token), 422, 'Request validation failed');
      for (let i = 0; i < 3; i += 1) expectProblem(await deleteMe(user.token, { password: 'not the password' }), 400, AuthErrors.INCORRECT_CURRENT_PASSWORD);
      expectProblem(await deleteMe(user.token, { password: user.account.password }), 429, AuthErrors.TOO_MANY_SIGNIN_FAILURES);
      await me(user.token).expect(200);
      expect(await rowsOf('user_sessions', user.userId)).toBe(1);
      expectProblem(await t.http().delete(`${AUTH}/me`).send({ password: user.account.password }), 401, AuthErrors.NOT_AUTHENTICATED);
      advance(15 * MINUTE + 1000);
      await deleteMe(user.token, { password: user.account.password }).expect(200);
    });

    it('asks an account with TOTP for an aal2 session', async () => {
      const user = await signUp(t.http);
      const { aal2 } = await withSecondFactor(user);
      expectProblem(await deleteMe(user.token, { password: user.account.password }), 403, AuthErrors.ADDITIONAL_AUTH_REQUIRED);
      await deleteMe(aal2, { password: user.account.password }).expect(200);
    });

    it('lets one of parallel deletions through, and mails one goodbye', async () => {
      const user = await signUp(t.http);
      // Three: each attempt counts against the account's failed sign-ins (3 here) until its password checked out.
      const results = await Promise.all(Array.from({ length: 3 }, () => deleteMe(user.token, { password: user.account.password })));
      // The losers either saw the account gone at the guard (401) or inside the transaction (404).
      expect(results.filter((r) => r.status === 200)).toHaveLength(1);
      expect(results.filter((r) => ![200, 401, 404].includes(r.status))).toEqual([]);
      await t.drainMail();
      expect(smtp.to(user.account.email).filter((m) => GOODBYE.test(m.subject))).toHaveLength(1);
      expect(await sql(database, "SELECT id FROM auth_events WHERE type = 'account_deleted' AND user_id = $1", [user.userId])).toHaveLength(1);
    });

    it('leaves nothing half-deleted when the database refuses a statement inside the transaction', async () => {
      const user = await signUp(t.http);
      const { aal2 } = await withSecondFactor(user);
      await t.drainMail();
      const before = await wholeDatabase(database);
      // The event is the transaction's last statement: every delete and update before it has run when it fails.
      if (databaseKind === 'postgres') {
        await sql(database, "CREATE FUNCTION refuse_event() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$ LANGUAGE plpgsql");
        await sql(database, "CREATE TRIGGER refuse_account_deleted BEFORE INSERT ON auth_events FOR EACH ROW WHEN (NEW.type = 'account_deleted') EXECUTE FUNCTION refuse_event()");
      } else {
        await sql(database, "CREATE TRIGGER refuse_account_deleted BEFORE INSERT ON auth_events WHEN NEW.type = 'account_deleted' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END");
      }
      try {
        const res = await deleteMe(aal2, { password: user.account.password });
        expectProblem(res, 500, AuthErrors.DELETE_ACCOUNT_FAILED);
        expect(JSON.stringify(res.body)).not.toContain('refused by the test');
        expect(await wholeDatabase(database)).toBe(before);
        await me(aal2).expect(200);
        await t.http().post(`${AUTH}/signin`).send(user.account).expect(403); // TOTP still on
        await t.drainMail();
        expect(smtp.to(user.account.email).filter((m) => GOODBYE.test(m.subject))).toEqual([]);
      } finally {
        await sql(database, 'DROP TRIGGER refuse_account_deleted' + (databaseKind === 'postgres' ? ' ON auth_events' : ''));
      }
      await deleteMe(aal2, { password: user.account.password }).expect(200);
      await me(aal2).expect(401);
    });

    it('clears the events of an admin\'s actions on other accounts of the admin\'s client address', async () => {
      const admin = await signUp(t.http);
      const target = await signUp(t.http);
      await sql(database, "UPDATE users SET roles = 'admin' WHERE id = $1", [admin.userId]);
      advance(6_000); // past the access check's cached copy without the role
      await t.http().post(`${AUTH}/admin/users/${target.userId}/lock`).set(bearer(admin.token)).expect(200);
      await deleteMe(admin.token, { password: admin.account.password }).expect(200);
      const locked = (await sql(database, "SELECT ip, user_agent FROM auth_events WHERE type = 'user_locked' AND user_id = $1", [target.userId])) as { ip: string | null }[];
      expect(locked).toEqual([{ ip: null, user_agent: null }]);
      const targetSignup = (await sql(database, "SELECT ip FROM auth_events WHERE type = 'signup' AND user_id = $1", [target.userId])) as { ip: string | null }[];
      expect(targetSignup[0].ip).not.toBeNull(); // the target's own events keep theirs
    });

    (databaseKind === 'postgres' ? it : it.skip)('deletes an account without a password on a recent sign-in, and answers 403 to an older one', async () => {
      await sql(database, 'ALTER TABLE users ALTER COLUMN hashed_password DROP NOT NULL');
      const user = await signUp(t.http);
      await sql(database, 'UPDATE users SET hashed_password = NULL WHERE id = $1', [user.userId]);
      advance(5 * MINUTE + 1000);
      expectProblem(await deleteMe(user.token, {}), 403, AuthErrors.RECENT_SIGNIN_REQUIRED);
      // A new sign-in (as a provider's would be): a fresh session, inserted as the module does.
      const fresh = await t.http().post(`${AUTH}/signin`).send(user.account);
      expect(fresh.status).toBe(401); // no password: no password sign-in
      const sessionId = ((await sql(database, 'SELECT id FROM user_sessions WHERE user_id = $1', [user.userId])) as { id: string }[])[0].id;
      await sql(database, 'UPDATE user_sessions SET created_at = $1 WHERE id = $2', [new Date(Date.now() + offsetMs - MINUTE), sessionId]);
      await deleteMe(user.token, {}).expect(200);
      expect(await rowsOf('user_sessions', user.userId)).toBe(0);
    });
  });

  describe('GET /me/export', () => {
    it('hands over profile, sessions, identities and own events as a JSON attachment, never a hash, token or secret', async () => {
      const user = await signUp(t.http, { full_name: 'Ada Lovelace' });
      const other = await signUp(t.http);
      const setup = await t.http().post(`${AUTH}/mfa/totp/setup`).set(bearer(user.token)).expect(200);
      const signin = await t.http().post(`${AUTH}/signin`).send(user.account).expect(200);
      await t.http().post(`${AUTH}/forgot-password`).send({ email: user.account.email }).expect(200);
      await linkIdentity(user);
      await linkIdentity(other);
      await t.drainMail();
      const reset = await smtp.waitFor(user.account.email, (m) => /reset/i.test(m.subject));

      const res = await t.http().get(`${AUTH}/me/export`).set(bearer(user.token)).expect(200);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      expect(res.headers['content-disposition']).toBe('attachment; filename="account-export.json"');
      const data = res.body;
      expect(Object.keys(data).sort()).toEqual(['events', 'exported_at', 'identities', 'profile', 'sessions']);
      expect(data.profile).toMatchObject({ id: user.userId, email: user.account.email, username: user.account.username, full_name: 'Ada Lovelace' });
      expect(data.sessions).toHaveLength(2);
      expect(data.sessions.filter((s: { current: boolean }) => s.current)).toHaveLength(1);
      expect(data.identities).toEqual([{ id: expect.any(Number), provider: 'example', email: user.account.email, created_at: expect.any(String) }]);
      expect(data.events.map((e: { type: string }) => e.type)).toEqual(['signup', 'signin']);

      const text = JSON.stringify(data);
      const hash = ((await sql(database, 'SELECT hashed_password FROM users WHERE id = $1', [user.userId])) as { hashed_password: string }[])[0].hashed_password;
      const stored = ((await sql(database, 'SELECT secret FROM totp_factors WHERE user_id = $1', [user.userId])) as { secret: string }[])[0].secret;
      for (const secret of [hash, '$argon2', user.account.password, user.token, signin.body.access_token, signin.body.refresh_token, setup.body.secret, stored, tokenFromMail(reset)]) {
        expect(text).not.toContain(secret);
      }
      expect(text).not.toContain(other.account.email);
    });

    it('needs the bearer', async () => {
      expectProblem(await t.http().get(`${AUTH}/me/export`), 401, AuthErrors.NOT_AUTHENTICATED);
    });
  });
});

(DATABASES.includes('postgres') && !REDIS_MISSING ? describe : describe.skip).each(['fastify', 'express'] as const)(
  'account deletion across two instances sharing Redis with %s',
  (adapter) => {
    let database: TestDatabase;
    let smtp: TestSmtpServer;
    let a: TestApp;
    let b: TestApp;

    beforeAll(async () => {
      database = await createTestDatabase('postgres');
      smtp = await TestSmtpServer.start();
      // A long cache lifetime: only the announcement through Redis can make B see the deletion soon.
      const env = { USER_CACHE_TTL_SECONDS: '60', REDIS_URL: TEST_REDIS_URL };
      a = await startTestApp({ adapter, databaseUrl: database.url, smtpUrl: smtp.url, env });
      b = await startTestApp({ adapter, databaseUrl: database.url, smtpUrl: smtp.url, env });
    });

    afterAll(async () => {
      await a?.close();
      await b?.close();
      await smtp?.stop();
      await database?.drop();
    });

    it('refuses every token of an account deleted on one instance on the other at once, though it had the user cached', async () => {
      const user = await signUp(a.http);
      const second = await b.http().post(`${AUTH}/signin`).send(user.account).expect(200);
      for (const token of [user.token, second.body.access_token]) await b.http().get(`${AUTH}/me`).auth(token, { type: 'bearer' }).expect(200);
      await a.http().delete(`${AUTH}/me`).auth(user.token, { type: 'bearer' }).send({ password: user.account.password }).expect(200);
      for (const token of [user.token, second.body.access_token]) {
        const deadline = Date.now() + 1000;
        let status = 200;
        while (status === 200 && Date.now() < deadline) status = (await b.http().get(`${AUTH}/me`).auth(token, { type: 'bearer' })).status;
        expect(status).toBe(401);
      }
      await b.http().post(`${AUTH}/refresh`).send({ refresh_token: second.body.refresh_token }).expect(401);
    });
  },
);

describe.each([DATABASES[0]])('the goodbye of a deleted account on %s, to a mailbox that refuses it', (databaseKind) => {
  let database: TestDatabase;
  let smtp: TestSmtpServer;
  let t: TestApp;

  beforeAll(async () => {
    database = await createTestDatabase(databaseKind);
    smtp = await TestSmtpServer.start({ rejectRecipient: (address) => address.startsWith('bounce') });
    t = await startTestApp({ adapter: 'fastify', databaseUrl: database.url, smtpUrl: smtp.url, env: { MAIL_MAX_ATTEMPTS: '2' }, mail: { retryInitialDelayMs: 1, retryMaxDelayMs: 1 } });
  });

  afterAll(async () => {
    await t?.close();
    await smtp?.stop();
    await database?.drop();
  });

  it("is deleted once it is dead, as the account's own dead mail was with the account", async () => {
    const user = await signUp(t.http, { email: `bounce-${newAccount().email}` });
    await t.drainMail();
    expect(await sql(database, "SELECT status FROM mail_outbox WHERE user_id = $1", [user.userId])).toEqual([{ status: 'dead' }]); // the welcome
    await t.http().delete(`${AUTH}/me`).auth(user.token, { type: 'bearer' }).send({ password: user.account.password }).expect(200);
    await t.drainMail();
    expect(t.logs.lines.some((line) => /mail dead .*kind=account-deleted/.test(line))).toBe(true);
    expect(await wholeDatabase(database)).not.toContain(user.account.email);
  });
});
