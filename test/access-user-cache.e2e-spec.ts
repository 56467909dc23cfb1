import { UsersService } from '../src/users/users.service';
import { createTestDatabase, DATABASES, sql, TestDatabase } from './support/databases';
import { expectProblem, signUp } from './support/fixtures';
import { REDIS_MISSING, TEST_REDIS_URL } from './support/redis';
import { TestSmtpServer } from './support/smtp';
import { matrix, startTestApp, TestApp, useTestApp } from './support/test-app';

const ME = '/api/v1/auth/me';

/** What the access-check cache may serve stale, and what must take effect at once. */
describe.each(matrix(DATABASES))('access-check user cache on %s with %s', (databaseKind, adapter) => {
  const { t, database } = useTestApp(databaseKind, { adapter, env: { USER_CACHE_TTL_SECONDS: '5' } });

  it('sees a deactivation through UsersService at once', async () => {
    const { token, userId } = await signUp(t.http);
    await t.http().get(ME).auth(token, { type: 'bearer' }).expect(200);
    await t.app.get(UsersService).setActive(userId, false);
    expectProblem(await t.http().get(ME).auth(token, { type: 'bearer' }), 403, 'User account is inactive');
  });

  it('ends the old token at once after a password change, though the user was cached', async () => {
    const { token, account } = await signUp(t.http);
    await t.http().get(ME).auth(token, { type: 'bearer' }).expect(200);
    await t.http().post('/api/v1/auth/change-password').auth(token, { type: 'bearer' })
      .send({ old_password: account.password, new_password: 'changed password here' }).expect(200);
    expectProblem(await t.http().get(ME).auth(token, { type: 'bearer' }), 401);
  });

  it('sees an edit made directly in the database within the cache lifetime, and not before', async () => {
    const { token, userId } = await signUp(t.http);
    await t.http().get(ME).auth(token, { type: 'bearer' }).expect(200);
    await sql(database, 'UPDATE users SET is_active = $1 WHERE id = $2', [false, userId]);
    // Documented staleness: the copy read a moment ago is still served...
    await t.http().get(ME).auth(token, { type: 'bearer' }).expect(200);
    // ...until its 5 seconds are over.
    t.advanceClock(5_001);
    expectProblem(await t.http().get(ME).auth(token, { type: 'bearer' }), 403, 'User account is inactive');
  });

  it('sees a session revoked directly in the database within the cache lifetime, and not before', async () => {
    const { token, userId } = await signUp(t.http);
    await t.http().get(ME).auth(token, { type: 'bearer' }).expect(200);
    await sql(database, 'UPDATE user_sessions SET revoked_at = expires_at WHERE user_id = $1', [userId]);
    await t.http().get(ME).auth(token, { type: 'bearer' }).expect(200);
    t.advanceClock(5_001);
    expectProblem(await t.http().get(ME).auth(token, { type: 'bearer' }), 401, 'Could not validate credentials');
  });
});

(DATABASES.includes('postgres') && !REDIS_MISSING ? describe : describe.skip).each(['fastify', 'express'] as const)(
  'access-check cache across two instances sharing Redis with %s',
  (adapter) => {
    let database: TestDatabase;
    let smtp: TestSmtpServer;
    let a: TestApp;
    let b: TestApp;

    beforeAll(async () => {
      database = await createTestDatabase('postgres');
      smtp = await TestSmtpServer.start();
      const env = { USER_CACHE_TTL_SECONDS: '60', REDIS_URL: TEST_REDIS_URL };
      a = await startTestApp({ adapter, databaseUrl: database.url, smtpUrl: smtp.url, env });
      b = await startTestApp({ adapter, databaseUrl: database.url, smtpUrl: smtp.url, env });
    });

    /** B's status for GET /me with `token`, asked until it is no longer 200 or a second has passed. */
    async function statusOnBOnceChanged(token: string): Promise<number> {
      const deadline = Date.now() + 1000;
      let status = 200;
      while (status === 200 && Date.now() < deadline) {
        status = (await b.http().get(ME).auth(token, { type: 'bearer' })).status;
      }
      return status;
    }

    afterAll(async () => {
      await a?.close();
      await b?.close();
      await smtp?.stop();
      await database?.drop();
    });

    it('a password change on one instance ends the old token on the other at once', async () => {
      const { token, account } = await signUp(a.http);
      await b.http().get(ME).auth(token, { type: 'bearer' }).expect(200); // cached on B for 60 s
      await a.http().post('/api/v1/auth/change-password').auth(token, { type: 'bearer' })
        .send({ old_password: account.password, new_password: 'changed on instance a' }).expect(200);
      expect(await statusOnBOnceChanged(token)).toBe(401);
    });

    it('a sign-out on one instance ends the access token on the other at once', async () => {
      const { token } = await signUp(a.http);
      await b.http().get(ME).auth(token, { type: 'bearer' }).expect(200); // cached on B for 60 s
      await a.http().post('/api/v1/auth/signout').auth(token, { type: 'bearer' }).expect(200);
      expect(await statusOnBOnceChanged(token)).toBe(401);
    });

    it('a deactivation on one instance is seen on the other at once', async () => {
      const { token, userId } = await signUp(a.http);
      await b.http().get(ME).auth(token, { type: 'bearer' }).expect(200);
      await a.app.get(UsersService).setActive(userId, false);
      expect(await statusOnBOnceChanged(token)).toBe(403);
    });
  },
);
