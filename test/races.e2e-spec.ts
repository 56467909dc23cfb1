import * as argon2 from 'argon2';
import { AuthErrors } from '../src/common/auth.errors';
import { DATABASES, sql } from './support/databases';
import { expectProblem, newAccount, signUp } from './support/fixtures';
import { matrix, useTestApp } from './support/test-app';

const AUTH = '/api/v1/auth';
const PARALLEL = 20;
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
