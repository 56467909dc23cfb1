import { AuthErrors, AuthMessages } from '../src/common/auth.errors';
import { DATABASES, sql } from './support/databases';
import { expectProblem, newAccount, signUp } from './support/fixtures';
import { matrix, useTestApp } from './support/test-app';

const AUTH = '/api/v1/auth';

describe.each(matrix(DATABASES))('auth contract on %s with %s', (databaseKind, adapter) => {
  const { t, database, smtp } = useTestApp(databaseKind, { adapter });

  describe('POST /signup', () => {
    it('creates the user, answers 201 with a token response and sends a welcome email', async () => {
      const account = newAccount({ full_name: 'Ada Lovelace' });
      const res = await t.http().post(`${AUTH}/signup`).send(account).expect(201);

      expect(res.body).toEqual({
        access_token: expect.stringMatching(/^[\w-]+\.[\w-]+\.[\w-]+$/),
        token_type: 'bearer',
        expires_in: 1800,
        refresh_token: expect.stringMatching(/^[\w-]{43}$/),
        refresh_expires_in: 30 * 24 * 3600,
        user: {
          id: expect.any(Number),
          email: account.email,
          username: account.username,
          full_name: 'Ada Lovelace',
          is_active: true,
          is_verified: false,
          mfa_enabled: false,
          roles: [],
          has_password: true,
          created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/),
        },
      });
      expect(Math.abs(Date.parse(res.body.user.created_at) - Date.now())).toBeLessThan(60_000);
      const mail = await smtp.waitFor(account.email);
      expect(mail.subject).toContain('Welcome');
      expect(mail.text).toContain(account.username);
      expect(mail.html).toContain(account.username);
    });

    it('stores the email trimmed and lower-cased, and rejects it again in any case', async () => {
      const account = newAccount();
      const mixed = `  ${account.email.toUpperCase()} `;
      const res = await t.http().post(`${AUTH}/signup`).send({ ...account, email: mixed }).expect(201);
      expect(res.body.user.email).toBe(account.email);

      const again = await t.http().post(`${AUTH}/signup`).send({ ...newAccount(), email: account.email.toUpperCase() });
      expectProblem(again, 400, AuthErrors.EMAIL_ALREADY_REGISTERED);
    });

    it('answers 400 Username already taken, regardless of case', async () => {
      const { account } = await signUp(t.http);
      const res = await t.http().post(`${AUTH}/signup`).send(newAccount({ username: account.username.toUpperCase() }));
      expectProblem(res, 400, AuthErrors.USERNAME_ALREADY_TAKEN);
    });

    it('answers 422 with one error per invalid field', async () => {
      const res = await t.http().post(`${AUTH}/signup`).send({ email: 'not-an-email', username: 'a', password: 'short' });
      expectProblem(res, 422);
      const fields = (res.body.errors as { field: string }[]).map((e) => e.field);
      expect(new Set(fields)).toEqual(new Set(['email', 'username', 'password']));
      for (const error of res.body.errors) expect(error.message).toEqual(expect.any(String));
    });

    it('accepts any characters in a password, 8 to 128 of them counted as characters', async () => {
      const emojiPassword = '\u{1F512}'.repeat(8); // 8 characters, 16 UTF-16 units
      await t.http().post(`${AUTH}/signup`).send(newAccount({ password: emojiPassword })).expect(201);
      await t.http().post(`${AUTH}/signup`).send(newAccount({ password: 'x'.repeat(128) })).expect(201);
      expectProblem(await t.http().post(`${AUTH}/signup`).send(newAccount({ password: 'x'.repeat(129) })), 422);
      expectProblem(await t.http().post(`${AUTH}/signup`).send(newAccount({ password: '\u{1F512}'.repeat(7) })), 422);
    });

    it('never truncates a password: a long one differing only at the end does not sign in', async () => {
      const password = 'p'.repeat(100) + 'A';
      const { account } = await signUp(t.http, { password });
      await t.http().post(`${AUTH}/signin`).send({ email: account.email, password: 'p'.repeat(100) + 'B' }).expect(401);
      await t.http().post(`${AUTH}/signin`).send({ email: account.email, password }).expect(200);
    });

    it('stores only an argon2id hash of the password, with a unique salt', async () => {
      const password = 'same password for two';
      const a = await signUp(t.http, { password });
      const b = await signUp(t.http, { password });
      const rows = (await sql(database, 'SELECT hashed_password FROM users WHERE id IN ($1, $2)', [a.userId, b.userId])) as {
        hashed_password: string;
      }[];
      expect(rows).toHaveLength(2);
      for (const row of rows) {
        expect(row.hashed_password).toMatch(/^\$argon2id\$v=19\$[mpt=\d,]+\$[\w+/]+\$[\w+/]+$/);
        const params = Object.fromEntries(row.hashed_password.split('$')[3].split(',').map((kv) => kv.split('=')));
        expect(Number(params.m)).toBeGreaterThanOrEqual(19456);
        expect(Number(params.t)).toBeGreaterThanOrEqual(2);
        expect(Number(params.p)).toBeGreaterThanOrEqual(1);
        expect(row.hashed_password).not.toContain(password);
      }
      expect(rows[0].hashed_password).not.toBe(rows[1].hashed_password);
    });
  });

  describe('POST /signin', () => {
    it('answers 200 with a token response for the right password, email in any case', async () => {
      const { account, userId } = await signUp(t.http);
      const res = await t.http().post(`${AUTH}/signin`).send({ email: account.email.toUpperCase(), password: account.password }).expect(200);
      expect(res.body).toMatchObject({ token_type: 'bearer', expires_in: 1800, user: { id: userId, email: account.email } });
      expect(res.body.user).not.toHaveProperty('hashed_password');
      await t.http().get(`${AUTH}/me`).auth(res.body.access_token, { type: 'bearer' }).expect(200);
    });

    it('answers the same 401 for a wrong password and for an unknown email', async () => {
      const { account } = await signUp(t.http);
      const wrong = await t.http().post(`${AUTH}/signin`).send({ email: account.email, password: 'wrong password' });
      const unknown = await t.http().post(`${AUTH}/signin`).send({ email: `nobody-${account.email}`, password: 'wrong password' });
      expectProblem(wrong, 401, AuthErrors.INVALID_CREDENTIALS);
      expectProblem(unknown, 401, AuthErrors.INVALID_CREDENTIALS);
      expect(wrong.body).toEqual(unknown.body);
      expect(wrong.headers['www-authenticate']).toBe('Bearer');
    });

    it('answers 403 User account is inactive for a deactivated account', async () => {
      const { account, userId } = await signUp(t.http);
      await sql(database, 'UPDATE users SET is_active = $1 WHERE id = $2', [false, userId]);
      const res = await t.http().post(`${AUTH}/signin`).send({ email: account.email, password: account.password });
      expectProblem(res, 403, AuthErrors.INACTIVE_USER);
    });

    it('answers 422 for a missing password', async () => {
      const res = await t.http().post(`${AUTH}/signin`).send({ email: 'a@example.com' });
      expectProblem(res, 422);
      expect(res.body.errors).toContainEqual({ field: 'password', message: expect.any(String) });
    });
  });

  describe('GET /me', () => {
    it('answers 200 with the user, never a hash or token', async () => {
      const { token, account, userId } = await signUp(t.http, { full_name: 'Grace' });
      const res = await t.http().get(`${AUTH}/me`).auth(token, { type: 'bearer' }).expect(200);
      expect(res.body).toEqual({
        id: userId,
        email: account.email,
        username: account.username,
        full_name: 'Grace',
        is_active: true,
        is_verified: false,
        mfa_enabled: false,
        roles: [],
        has_password: true,
        created_at: expect.any(String),
      });
    });

    it('answers 401 with WWW-Authenticate: Bearer without a token or with a bad one', async () => {
      const missing = await t.http().get(`${AUTH}/me`);
      expectProblem(missing, 401, AuthErrors.NOT_AUTHENTICATED);
      expect(missing.headers['www-authenticate']).toBe('Bearer');
      const bad = await t.http().get(`${AUTH}/me`).auth('not.a.jwt', { type: 'bearer' });
      expectProblem(bad, 401, AuthErrors.INVALID_ACCESS_TOKEN);
      expect(bad.headers['www-authenticate']).toBe('Bearer');
    });

    it('answers 403 once the account is deactivated, 404 once it is deleted', async () => {
      const inactive = await signUp(t.http);
      await sql(database, 'UPDATE users SET is_active = $1 WHERE id = $2', [false, inactive.userId]);
      expectProblem(await t.http().get(`${AUTH}/me`).auth(inactive.token, { type: 'bearer' }), 403, AuthErrors.INACTIVE_USER);
      expectProblem(
        await t.http().post(`${AUTH}/change-password`).auth(inactive.token, { type: 'bearer' }).send({ old_password: inactive.account.password, new_password: 'another long one' }),
        403,
        AuthErrors.INACTIVE_USER,
      );

      const deleted = await signUp(t.http);
      await sql(database, 'DELETE FROM users WHERE id = $1', [deleted.userId]);
      expectProblem(await t.http().get(`${AUTH}/me`).auth(deleted.token, { type: 'bearer' }), 404, AuthErrors.USER_NOT_FOUND);
    });
  });

  describe('POST /change-password', () => {
    it('changes the password and ends every earlier token, including the one that made the change', async () => {
      const { token, account } = await signUp(t.http);
      const other = (await t.http().post(`${AUTH}/signin`).send({ email: account.email, password: account.password }).expect(200)).body.access_token;
      const res = await t.http().post(`${AUTH}/change-password`).auth(token, { type: 'bearer' }).send({ old_password: account.password, new_password: 'a brand new password' }).expect(200);
      expect(res.body).toEqual({ message: AuthMessages.PASSWORD_CHANGED });

      expectProblem(await t.http().get(`${AUTH}/me`).auth(token, { type: 'bearer' }), 401);
      expectProblem(await t.http().get(`${AUTH}/me`).auth(other, { type: 'bearer' }), 401);
      await t.http().post(`${AUTH}/signin`).send({ email: account.email, password: account.password }).expect(401);
      const fresh = await t.http().post(`${AUTH}/signin`).send({ email: account.email, password: 'a brand new password' }).expect(200);
      await t.http().get(`${AUTH}/me`).auth(fresh.body.access_token, { type: 'bearer' }).expect(200);
    });

    it('answers 400 Incorrect current password and changes nothing', async () => {
      const { token, account } = await signUp(t.http);
      const res = await t.http().post(`${AUTH}/change-password`).auth(token, { type: 'bearer' }).send({ old_password: 'not my password', new_password: 'a brand new password' });
      expectProblem(res, 400, AuthErrors.INCORRECT_CURRENT_PASSWORD);
      await t.http().get(`${AUTH}/me`).auth(token, { type: 'bearer' }).expect(200);
      await t.http().post(`${AUTH}/signin`).send({ email: account.email, password: account.password }).expect(200);
    });

    it('answers 401 without a token and 422 for a too short new password', async () => {
      expectProblem(await t.http().post(`${AUTH}/change-password`).send({ old_password: 'whatever1', new_password: 'whatever2' }), 401);
      const { token, account } = await signUp(t.http);
      const res = await t.http().post(`${AUTH}/change-password`).auth(token, { type: 'bearer' }).send({ old_password: account.password, new_password: 'short' });
      expectProblem(res, 422);
      expect(res.body.errors).toEqual([{ field: 'new_password', message: expect.stringContaining('8') }]);
    });
  });

  describe('POST /forgot-password and /reset-password', () => {
    it('answers the same 200 for a known and an unknown email, and mails only the known one', async () => {
      const { account } = await signUp(t.http);
      const known = await t.http().post(`${AUTH}/forgot-password`).send({ email: account.email }).expect(200);
      const unknown = await t.http().post(`${AUTH}/forgot-password`).send({ email: `nobody-${account.email}` }).expect(200);
      expect(known.body).toEqual({ message: AuthMessages.RESET_EMAIL_SENT });
      expect(unknown.body).toEqual(known.body);
      await t.drainMail();
      expect(smtp.to(`nobody-${account.email}`)).toHaveLength(0);
      expect(smtp.to(account.email).filter((m) => m.subject.includes('Reset'))).toHaveLength(1);
    });

    it('resets the password with the mailed token, once', async () => {
      const { account, token: accessToken } = await signUp(t.http);
      await t.http().post(`${AUTH}/forgot-password`).send({ email: account.email }).expect(200);
      const mail = await smtp.waitFor(account.email, (m) => m.subject.includes('Reset'));
      const link = new URL(mail.text.match(/https?:\/\/\S+/)![0]);
      const resetToken = link.searchParams.get('token')!;

      const res = await t.http().post(`${AUTH}/reset-password`).send({ token: resetToken, new_password: 'reset to this one' }).expect(200);
      expect(res.body).toEqual({ message: AuthMessages.PASSWORD_RESET });
      expectProblem(await t.http().post(`${AUTH}/reset-password`).send({ token: resetToken, new_password: 'and again this' }), 400, AuthErrors.INVALID_RESET_TOKEN);
      expectProblem(await t.http().get(`${AUTH}/me`).auth(accessToken, { type: 'bearer' }), 401);
      await t.http().post(`${AUTH}/signin`).send({ email: account.email, password: 'reset to this one' }).expect(200);
    });

    it('answers 400 Invalid or expired token for a made-up token and 422 for a missing one', async () => {
      expectProblem(await t.http().post(`${AUTH}/reset-password`).send({ token: 'made-up', new_password: 'long enough' }), 400, AuthErrors.INVALID_RESET_TOKEN);
      expectProblem(await t.http().post(`${AUTH}/reset-password`).send({ new_password: 'long enough' }), 422);
    });
  });

  describe('errors', () => {
    it('answers 400 for malformed JSON and 413 for an oversized body, as problem details', async () => {
      const malformed = await t.http().post(`${AUTH}/signin`).set('Content-Type', 'application/json').send('{"password": hunter2secret}');
      expectProblem(malformed, 400, 'Malformed request body: it is not valid JSON');
      expect(malformed.text).not.toContain('hunter2');
      const huge = await t.http().post(`${AUTH}/signin`).send({ email: 'a@example.com', password: 'x'.repeat(100_000) });
      expectProblem(huge, 413, 'Request body is too large');
    });

    it('answers 422 naming the body when it is not an object', async () => {
      const res = await t.http().post(`${AUTH}/signin`).set('Content-Type', 'application/json').send('["a@example.com"]');
      expectProblem(res, 422);
      expect(res.body.errors).toEqual([{ field: 'body', message: 'body must be a JSON object' }]);
    });
  });
});
