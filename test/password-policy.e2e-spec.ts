import { DATABASES } from './support/databases';
import { expectProblem, newAccount, signUp } from './support/fixtures';
import { tokenFromMail } from './support/smtp';
import { matrix, useTestApp } from './support/test-app';

const AUTH = '/api/v1/auth';
const COMMON = /most common passwords/;
const IDENTIFIER = /must not contain your username/;

/** The same password policy on sign-up, change and reset: common passwords and own identifiers refused. */
describe.each(matrix(DATABASES))('password policy on %s with %s', (databaseKind, adapter) => {
  const { t, smtp } = useTestApp(databaseKind, { adapter });

  it('refuses common passwords and ones built from the username or email at sign-up, creating nothing', async () => {
    const common = await t.http().post(`${AUTH}/signup`).send(newAccount({ password: 'password123' }));
    expectProblem(common, 422);
    expect(common.body.errors).toEqual([{ field: 'password', message: expect.stringMatching(COMMON) }]);

    const account = newAccount();
    const own = await t.http().post(`${AUTH}/signup`).send({ ...account, password: `${account.username}!secret` });
    expectProblem(own, 422);
    expect(own.body.errors).toEqual([{ field: 'password', message: expect.stringMatching(IDENTIFIER) }]);
    const local = account.email.split('@')[0].toUpperCase();
    expectProblem(await t.http().post(`${AUTH}/signup`).send({ ...account, password: `My ${local} pass` }), 422);

    // Nothing was created: the same account signs up fine with an acceptable password.
    await t.http().post(`${AUTH}/signup`).send(account).expect(201);
  });

  it('refuses them on change-password, and the old password keeps working', async () => {
    const { token, account } = await signUp(t.http);
    for (const weak of ['iloveyou1', `${account.username} 2026`]) {
      const res = await t.http().post(`${AUTH}/change-password`).auth(token, { type: 'bearer' })
        .send({ old_password: account.password, new_password: weak });
      expectProblem(res, 422);
      expect(res.body.errors[0].field).toBe('new_password');
    }
    await t.http().get(`${AUTH}/me`).auth(token, { type: 'bearer' }).expect(200);
    await t.http().post(`${AUTH}/signin`).send({ email: account.email, password: account.password }).expect(200);
  });

  it('refuses them on reset-password without spending the token', async () => {
    const { account } = await signUp(t.http);
    await t.http().post(`${AUTH}/forgot-password`).send({ email: account.email }).expect(200);
    const token = tokenFromMail(await smtp.waitFor(account.email, (m) => m.subject.includes('Reset')));

    const weak = await t.http().post(`${AUTH}/reset-password`).send({ token, new_password: 'qwerty123' });
    expectProblem(weak, 422);
    expect(weak.body.errors).toEqual([{ field: 'new_password', message: expect.stringMatching(COMMON) }]);

    await t.http().post(`${AUTH}/reset-password`).send({ token, new_password: 'a sound new passphrase' }).expect(200);
    await t.http().post(`${AUTH}/signin`).send({ email: account.email, password: 'a sound new passphrase' }).expect(200);
  });
});
