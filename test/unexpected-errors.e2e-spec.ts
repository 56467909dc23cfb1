import { AuthService } from '../src/auth/auth.service';
import { createTestDatabase, DATABASES, sql, TestDatabase } from './support/databases';
import { expectProblem, NewAccount, signUp } from './support/fixtures';
import { TestSmtpServer } from './support/smtp';
import { matrix, startTestApp, TestApp } from './support/test-app';

const AUTH = '/api/v1/auth';

/** Breaks the database under a running app and checks what the client sees and what the log keeps. */
describe.each(matrix(DATABASES))('unexpected errors on %s with %s', (databaseKind, adapter) => {
  let database: TestDatabase;
  let smtp: TestSmtpServer;
  let t: TestApp;
  /** Signed up while every table still exists. */
  let account: NewAccount;

  beforeAll(async () => {
    database = await createTestDatabase(databaseKind);
    smtp = await TestSmtpServer.start();
    t = await startTestApp({ adapter, databaseUrl: database.url, smtpUrl: smtp.url });
    ({ account } = await signUp(t.http));
    await t.drainMail();
  });

  afterAll(async () => {
    await t?.close();
    await smtp?.stop();
    await database?.drop();
  });

  it("answers 500 with the route's generic detail and a request id, logs the cause, shows nothing internal", async () => {
    await sql(database, 'DROP TABLE password_reset_tokens');
    await sql(database, 'DROP TABLE mail_outbox');

    // reset-password reads the reset tokens.
    const reset = await t.http().post(`${AUTH}/reset-password`).send({ token: 'x'.repeat(43), new_password: 'long enough pw' });
    expectProblem(reset, 500, 'Error resetting password');

    for (const [res, table] of [[reset, 'password_reset_tokens']] as const) {
      expect(Object.keys(res.body).sort()).toEqual(['detail', 'request_id', 'status', 'title', 'type']);
      expect(res.body.request_id).toMatch(/^[0-9a-f-]{36}$/);
      expect(res.text).not.toMatch(/password_reset_tokens|mail_outbox|SELECT|INSERT|DELETE|no such table|relation|at \w+ \(/i);
      const logged = t.logs.lines.filter((line) => line.includes(res.body.request_id));
      expect(logged.length).toBeGreaterThan(0);
      expect(logged.join('\n')).toMatch(new RegExp(table));
    }
  });

  it('answers forgot-password as usual when queuing the mail fails after the answer, and logs why', async () => {
    // The outbox write happens after the answer (so a known email answers as fast as an unknown one):
    // its failure cannot change the answer any more, so it is logged with the request id.
    const forgot = await t.http().post(`${AUTH}/forgot-password`).send({ email: account.email }).expect(200);
    await t.app.get(AuthService).settled();
    const failure = t.logs.lines.find((line) => line.includes('password_reset_request failed'));
    expect(failure).toMatch(/request_id=[0-9a-f-]{36}/);
    expect(failure).toMatch(/mail_outbox/);
    expect(forgot.text).not.toMatch(/mail_outbox/);
    expect(t.logs.lines.some((line) => line.includes('event=password_reset_requested '))).toBe(false);
  });

  it('keeps answering the routes that do not need the broken tables', async () => {
    const signin = await t.http().post(`${AUTH}/signin`).send({ email: account.email, password: account.password }).expect(200);
    await t.http().get(`${AUTH}/me`).auth(signin.body.access_token, { type: 'bearer' }).expect(200);
  });

  it('answers the routes\' generic 500s when the users table is gone', async () => {
    await sql(database, databaseKind === 'postgres' ? 'DROP TABLE users CASCADE' : 'DROP TABLE users');
    expectProblem(await t.http().post(`${AUTH}/signin`).send({ email: 'a@example.com', password: 'whatever123' }), 500, 'Error during sign in');
    expectProblem(await t.http().post(`${AUTH}/forgot-password`).send({ email: 'a@example.com' }), 500, 'Error processing password reset request');
    expectProblem(
      await t.http().post(`${AUTH}/signup`).send({ email: 'b@example.com', username: 'bbb', password: 'whatever123' }),
      500,
      'Error during registration',
    );
  });
});
