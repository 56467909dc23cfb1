import * as argon2 from 'argon2';
import { AuthErrors } from '../src/common/auth.errors';
import { DATABASES, sql } from './support/databases';
import { expectProblem, newAccount, signUp } from './support/fixtures';
import { ReceivedMail, tokenFromMail } from './support/smtp';
import { matrix, useTestApp } from './support/test-app';

const AUTH = '/api/v1/auth';
/** Requests racing for one thing in every race below. */
const PARALLEL = 20;
const isWelcome = (mail: ReceivedMail) => mail.subject.startsWith('Welcome');
const isReset = (mail: ReceivedMail) => mail.subject.includes('Reset');
const isNotice = (mail: ReceivedMail) => /password was changed/i.test(mail.subject);
/** What the app hashes with (OWASP minimum, the module's default). */
const APP_HASH = { m: 19456, t: 2, p: 1 };

function paramsOf(hash: string): { type: string; m: number; t: number; p: number } {
  const [, type, , params] = hash.split('$');
  const values = Object.fromEntries(params.split(',').map((kv) => kv.split('=')));
  return { type, m: Number(values.m), t: Number(values.t), p: Number(values.p) };
}

/** Mixes the case of every other letter, differently for each `seed`. */
function mixedCase(value: string, seed: number): string {
  return [...value].map((c, i) => ((i + seed) % 3 === 0 ? c.toUpperCase() : c)).join('');
}

describe.each(matrix(DATABASES))('races and re-hashing on %s with %s', (databaseKind, adapter) => {
  const { t, database, smtp } = useTestApp(databaseKind, { adapter });

  /** Every stored account, in one query: each `sql()` call opens its own connection. */
  const allUsers = async () => (await sql(database, 'SELECT email, username FROM users')) as { email: string; username: string }[];

  const storedHash = async (userId: number): Promise<string> =>
    ((await sql(database, 'SELECT hashed_password FROM users WHERE id = $1', [userId])) as { hashed_password: string }[])[0].hashed_password;

  describe('parallel sign-ups', () => {
    it(`with one email: one 201, ${PARALLEL - 1} times 400 Email already registered, one row`, async () => {
      const email = newAccount().email;
      const bodies = Array.from({ length: PARALLEL }, (_, i) => newAccount({ email: i % 2 === 0 ? email : email.toUpperCase() }));
      const responses = await Promise.all(bodies.map((body) => t.http().post(`${AUTH}/signup`).send(body)));

      expect(responses.map((res) => res.status).sort()).toEqual([201, ...Array<number>(PARALLEL - 1).fill(400)]);
      for (const res of responses.filter((r) => r.status !== 201)) expectProblem(res, 400, AuthErrors.EMAIL_ALREADY_REGISTERED);
      const winner = responses.find((res) => res.status === 201)!;
      expect(winner.body.user.email).toBe(email);

      // Only the winner's sign-up went through: one row, under the winner's username, and one welcome mail.
      const winnerUsername = bodies[responses.indexOf(winner)].username;
      const users = await allUsers();
      expect(users.filter((u) => u.email === email)).toEqual([{ email, username: winnerUsername }]);
      const bodyUsernames = new Set(bodies.map((b) => b.username));
      expect(users.filter((u) => bodyUsernames.has(u.username))).toHaveLength(1);
      await t.drainMail();
      expect(smtp.to(email)).toHaveLength(1);
    });

    it(`with one username in different case: one 201, ${PARALLEL - 1} times 400 Username already taken, one row`, async () => {
      const username = newAccount().username;
      const bodies = Array.from({ length: PARALLEL }, (_, i) => newAccount({ username: mixedCase(username, i) }));
      expect(new Set(bodies.map((b) => b.username)).size).toBeGreaterThan(1);
      const responses = await Promise.all(bodies.map((body) => t.http().post(`${AUTH}/signup`).send(body)));

      expect(responses.map((res) => res.status).sort()).toEqual([201, ...Array<number>(PARALLEL - 1).fill(400)]);
      for (const res of responses.filter((r) => r.status !== 201)) expectProblem(res, 400, AuthErrors.USERNAME_ALREADY_TAKEN);

      const winner = bodies[responses.findIndex((res) => res.status === 201)];
      const users = await allUsers();
      expect(users.filter((u) => u.username.toLowerCase() === username.toLowerCase())).toEqual([{ email: winner.email, username: winner.username }]);
      const bodyEmails = new Set(bodies.map((b) => b.email));
      expect(users.filter((u) => bodyEmails.has(u.email))).toHaveLength(1);
    });
  });

  /** The token in the latest mail to `email` that `filter` picks. */
  const tokenIn = async (email: string, filter: (mail: ReceivedMail) => boolean): Promise<string> => {
    await t.drainMail();
    await smtp.waitFor(email, filter);
    return tokenFromMail(smtp.to(email).filter(filter).at(-1)!);
  };

  describe('parallel redemptions of one token', () => {
    it(`of a reset token: one 200, ${PARALLEL - 1} times 400, one password change, one notice`, async () => {
      const { account, userId } = await signUp(t.http);
      await t.http().post(`${AUTH}/forgot-password`).send({ email: account.email }).expect(200);
      const token = await tokenIn(account.email, isReset);
      const passwords = Array.from({ length: PARALLEL }, (_, i) => `racing new password ${i}`);

      const responses = await Promise.all(passwords.map((new_password) => t.http().post(`${AUTH}/reset-password`).send({ token, new_password })));

      expect(responses.map((res) => res.status).sort()).toEqual([200, ...Array<number>(PARALLEL - 1).fill(400)]);
      for (const res of responses.filter((r) => r.status !== 200)) expectProblem(res, 400, AuthErrors.INVALID_RESET_TOKEN);
      // One change committed: the token version moved once, and the password is the winner's alone.
      const [{ token_version }] = (await sql(database, 'SELECT token_version FROM users WHERE id = $1', [userId])) as { token_version: number }[];
      expect(Number(token_version)).toBe(1);
      const winner = passwords[responses.findIndex((res) => res.status === 200)];
      await t.http().post(`${AUTH}/signin`).send({ email: account.email, password: winner }).expect(200);
      await t.http().post(`${AUTH}/signin`).send({ email: account.email, password: passwords.find((p) => p !== winner) }).expect(401);
      await t.drainMail();
      expect(smtp.to(account.email).filter(isNotice)).toHaveLength(1);
    });

    it(`of a verification token: one 200, ${PARALLEL - 1} times 400, verified once`, async () => {
      const { account, userId } = await signUp(t.http);
      const token = await tokenIn(account.email, isWelcome);

      const responses = await Promise.all(Array.from({ length: PARALLEL }, () => t.http().post(`${AUTH}/verify-email`).send({ token })));

      expect(responses.map((res) => res.status).sort()).toEqual([200, ...Array<number>(PARALLEL - 1).fill(400)]);
      for (const res of responses.filter((r) => r.status !== 200)) expectProblem(res, 400, AuthErrors.INVALID_VERIFICATION_TOKEN);
      const rows = (await sql(database, 'SELECT used_at FROM email_verification_tokens WHERE user_id = $1', [userId])) as { used_at: unknown }[];
      expect(rows).toHaveLength(1);
      expect(rows[0].used_at).not.toBeNull();
      const [user] = (await sql(database, 'SELECT is_verified FROM users WHERE id = $1', [userId])) as { is_verified: unknown }[];
      expect(Boolean(user.is_verified)).toBe(true);
    });
  });

  describe('parallel refreshes', () => {
    it(`of one refresh token: one rotation, all ${PARALLEL} answered with the same successor, which refreshes once more`, async () => {
      const signup = await t.http().post(`${AUTH}/signup`).send(newAccount()).expect(201);
      const presented = signup.body.refresh_token as string;

      const responses = await Promise.all(Array.from({ length: PARALLEL }, () => t.http().post(`${AUTH}/refresh`).send({ refresh_token: presented })));

      // Racing tabs of one browser all get the one successor (within REFRESH_TOKEN_REUSE_GRACE_SECONDS): no 401, no 500.
      expect(responses.map((res) => res.status)).toEqual(Array<number>(PARALLEL).fill(200));
      const successors = new Set(responses.map((res) => res.body.refresh_token as string));
      expect(successors.size).toBe(1);
      const [successor] = successors;
      expect(successor).not.toBe(presented);
      // One rotation in the database: the presented token spent, one successor, nothing else.
      const sid = (JSON.parse(Buffer.from((signup.body.access_token as string).split('.')[1], 'base64url').toString()) as { sid: string }).sid;
      const tokens = (await sql(database, 'SELECT spent_at FROM refresh_tokens WHERE session_id = $1', [sid])) as { spent_at: unknown }[];
      expect(tokens.map((row) => row.spent_at === null).sort()).toEqual([false, true]);

      const next = await t.http().post(`${AUTH}/refresh`).send({ refresh_token: successor }).expect(200);
      await t.http().get(`${AUTH}/me`).auth(next.body.access_token, { type: 'bearer' }).expect(200);
    });
  });

  describe('parallel changes of one account', () => {
    it(`changing the password with the same current one: one 200, ${PARALLEL - 1} refused, one change`, async () => {
      const { account, token, userId } = await signUp(t.http);
      const passwords = Array.from({ length: PARALLEL }, (_, i) => `racing changed password ${i}`);

      const responses = await Promise.all(
        passwords.map((new_password) =>
          t.http().post(`${AUTH}/change-password`).auth(token, { type: 'bearer' }).send({ old_password: account.password, new_password }),
        ),
      );

      // Once one change committed, the others' current password is no longer the current one (400), or
      // their access token, which the change ended, is refused at the guard (401); each attempt counts
      // against the account's password checks first, so past ten of them the rest are 429.
      const refusals: Record<number, string> = {
        400: AuthErrors.INCORRECT_CURRENT_PASSWORD,
        401: AuthErrors.INVALID_ACCESS_TOKEN,
        429: AuthErrors.TOO_MANY_SIGNIN_FAILURES,
      };
      expect(responses.filter((res) => res.status === 200)).toHaveLength(1);
      for (const res of responses.filter((r) => r.status !== 200)) expectProblem(res, res.status in refusals ? res.status : 400, refusals[res.status]);
      const [{ token_version }] = (await sql(database, 'SELECT token_version FROM users WHERE id = $1', [userId])) as { token_version: number }[];
      expect(Number(token_version)).toBe(1);
      const winner = passwords[responses.findIndex((res) => res.status === 200)];
      await t.http().post(`${AUTH}/signin`).send({ email: account.email, password: winner }).expect(200);
      await t.drainMail();
      expect(smtp.to(account.email).filter(isNotice)).toHaveLength(1);
    });

    it(`ending one session: one 200, ${PARALLEL - 1} times 404`, async () => {
      const { account, token } = await signUp(t.http);
      const other = await t.http().post(`${AUTH}/signin`).send(account).expect(200);
      const sid = (JSON.parse(Buffer.from((other.body.access_token as string).split('.')[1], 'base64url').toString()) as { sid: string }).sid;

      const responses = await Promise.all(Array.from({ length: PARALLEL }, () => t.http().delete(`${AUTH}/sessions/${sid}`).auth(token, { type: 'bearer' })));

      expect(responses.map((res) => res.status).sort()).toEqual([200, ...Array<number>(PARALLEL - 1).fill(404)]);
      for (const res of responses.filter((r) => r.status !== 200)) expectProblem(res, 404, AuthErrors.SESSION_NOT_FOUND);
    });
  });

  describe('re-hashing on sign-in', () => {
    it.each<[string, argon2.HashOptions]>([
      ['argon2id with a higher time cost (t=3)', { type: argon2.argon2id, memoryCost: 19456, timeCost: 3, parallelism: 1 }],
      ['argon2id with a different memory cost (m=24576)', { type: argon2.argon2id, memoryCost: 24576, timeCost: 2, parallelism: 1 }],
      ['argon2id weaker than the minimum (m=8192, t=1)', { type: argon2.argon2id, memoryCost: 8192, timeCost: 1, parallelism: 1 }],
      ['argon2i instead of argon2id', { type: argon2.argon2i, memoryCost: 19456, timeCost: 2, parallelism: 1 }],
    ])('replaces a hash made with %s by one with the current parameters, keeping old tokens valid', async (_name, options) => {
      const { account, token, userId } = await signUp(t.http);
      const legacy = await argon2.hash(account.password, options);
      await sql(database, 'UPDATE users SET hashed_password = $1 WHERE id = $2', [legacy, userId]);

      // A wrong password leaves the stale hash alone: only proof of the password may rewrite it.
      await t.http().post(`${AUTH}/signin`).send({ email: account.email, password: 'not the password' }).expect(401);
      expect(await storedHash(userId)).toBe(legacy);

      const signin = await t.http().post(`${AUTH}/signin`).send({ email: account.email, password: account.password }).expect(200);
      const rehashed = await storedHash(userId);
      expect(rehashed).not.toBe(legacy);
      expect(paramsOf(rehashed)).toEqual({ type: 'argon2id', ...APP_HASH });
      expect(await argon2.verify(rehashed, account.password)).toBe(true);

      // Re-hashing keeps the same password: tokens issued before it stay valid, sign-in still works.
      await t.http().get(`${AUTH}/me`).auth(token, { type: 'bearer' }).expect(200);
      await t.http().get(`${AUTH}/me`).auth(signin.body.access_token, { type: 'bearer' }).expect(200);
      await t.http().post(`${AUTH}/signin`).send({ email: account.email, password: account.password }).expect(200);
      expect(await storedHash(userId)).toBe(rehashed);
    });
  });
});
