import { AuthErrors } from '../src/common/auth.errors';
import { DATABASES, sql } from './support/databases';
import { expectProblem, newAccount, signUp } from './support/fixtures';
import { matrix, useTestApp } from './support/test-app';

const AUTH = '/api/v1/auth';

describe.each(matrix(DATABASES))('account self-service on %s with %s', (databaseKind, adapter) => {
  const { t, database } = useTestApp(databaseKind, { adapter });
  const patchMe = (token: string, body: unknown) => t.http().patch(`${AUTH}/me`).auth(token, { type: 'bearer' }).send(body as object);
  const me = (token: string) => t.http().get(`${AUTH}/me`).auth(token, { type: 'bearer' });

  describe('PATCH /me', () => {
    it('changes the full name, clears it with null, and changes nothing for {}', async () => {
      const { token, userId } = await signUp(t.http, { full_name: 'Ada' });
      expect((await patchMe(token, { full_name: 'Ada Lovelace' }).expect(200)).body.full_name).toBe('Ada Lovelace');
      expect((await me(token).expect(200)).body.full_name).toBe('Ada Lovelace'); // the guard's cached copy was dropped
      const unchanged = await patchMe(token, {}).expect(200);
      expect(unchanged.body.full_name).toBe('Ada Lovelace');
      expect((await patchMe(token, { full_name: null }).expect(200)).body.full_name).toBeNull();
      // Two changes, two events (in the change's transaction); `{}` changed nothing and records nothing.
      const events = (await sql(database, "SELECT details FROM auth_events WHERE type = 'profile_updated' AND user_id = $1", [userId])) as { details: unknown }[];
      expect(events).toHaveLength(2);
      expect(JSON.stringify(events)).not.toContain('Ada Lovelace');
    });

    it('changes the username, its case included, and signs in as before', async () => {
      const { account, token } = await signUp(t.http);
      const renamed = `${account.username}_x`;
      expect((await patchMe(token, { username: renamed }).expect(200)).body.username).toBe(renamed);
      expect((await patchMe(token, { username: renamed.toUpperCase() }).expect(200)).body.username).toBe(renamed.toUpperCase());
      expect((await me(token).expect(200)).body.username).toBe(renamed.toUpperCase());
      await t.http().post(`${AUTH}/signin`).send({ email: account.email, password: account.password }).expect(200);
    });

    it("refuses another account's username in any case with 400, and the sign-up rules with 422", async () => {
      const other = await signUp(t.http);
      const { token } = await signUp(t.http);
      expectProblem(await patchMe(token, { username: other.account.username.toUpperCase() }), 400, AuthErrors.USERNAME_ALREADY_TAKEN);
      for (const body of [{ username: 'a b' }, { username: 'ab' }, { username: null }, { full_name: 42 }, { full_name: 'x'.repeat(101) }]) {
        const res = await patchMe(token, body);
        expectProblem(res, 422, 'Request validation failed');
        expect(res.body.errors.length).toBeGreaterThan(0);
      }
      // Unknown fields are dropped, as on every route: the email changes only through change-email.
      const before = (await me(token).expect(200)).body.email;
      expect((await patchMe(token, { email: newAccount().email }).expect(200)).body.email).toBe(before);
    });

    it('needs the bearer', async () => {
      expectProblem(await t.http().patch(`${AUTH}/me`).send({ full_name: 'x' }), 401, AuthErrors.NOT_AUTHENTICATED);
    });

    it('lets one of parallel renames to one username through', async () => {
      const users = await Promise.all(Array.from({ length: 6 }, () => signUp(t.http)));
      const wanted = `race_${Date.now().toString(36)}`;
      const results = await Promise.all(users.map((user) => patchMe(user.token, { username: wanted })));
      expect(results.map((r) => r.status).sort()).toEqual([200, 400, 400, 400, 400, 400]);
    });
  });
});
