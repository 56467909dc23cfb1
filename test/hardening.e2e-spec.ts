import { DATABASES } from './support/databases';
import { MailOutbox } from '../src/outbox/mail-outbox.service';
import { PasswordHasher } from '../src/passwords/password-hasher';
import { expectProblem, holdNextCall, newAccount, signUp, waitUntil } from './support/fixtures';
import { tokenFromMail } from './support/smtp';
import { matrix, useTestApp } from './support/test-app';

const AUTH = '/api/v1/auth';
const MAX_FAILURES = 10;

describe.each(matrix(DATABASES))('hardening (issue 12) on %s with %s', (databaseKind, adapter) => {
  const { t, smtp } = useTestApp(databaseKind, { adapter, env: { SIGNIN_MAX_FAILURES: String(MAX_FAILURES) } });

  it('checks at most the limit of 30 wrong sign-ins sent at once for one account (finding 3)', async () => {
    const { account } = await signUp(t.http);
    const results = await Promise.all(
      Array.from({ length: 30 }, () => t.http().post(`${AUTH}/signin`).send({ email: account.email, password: 'wrong password 1' })),
    );
    const statuses = results.map((r) => r.status);
    expect(statuses.filter((s) => s === 401)).toHaveLength(MAX_FAILURES);
    expect(statuses.filter((s) => s === 429)).toHaveLength(30 - MAX_FAILURES);
  });

  it('counts wrong current passwords at change-password like failed sign-ins (finding 4)', async () => {
    const { account, token } = await signUp(t.http);
    const change = (old_password: string) =>
      t.http().post(`${AUTH}/change-password`).auth(token, { type: 'bearer' }).send({ old_password, new_password: 'a brand new passphrase 9' });
    for (let i = 0; i < MAX_FAILURES; i++) expectProblem(await change('not my password'), 400, 'Incorrect current password');
    // The right password no longer helps whoever holds a stolen token, and sign-in is locked as well.
    expectProblem(await change(account.password), 429);
    expectProblem(await t.http().post(`${AUTH}/signin`).send({ email: account.email, password: account.password }), 429);
  });

  it('voids a reset link mailed before a password change (finding 10)', async () => {
    const { account, token } = await signUp(t.http);
    await t.http().post(`${AUTH}/forgot-password`).send({ email: account.email }).expect(200);
    const mail = await smtp.waitFor(account.email, (m) => /reset/i.test(m.subject));
    await t
      .http()
      .post(`${AUTH}/change-password`)
      .auth(token, { type: 'bearer' })
      .send({ old_password: account.password, new_password: 'a brand new passphrase 9' })
      .expect(200);
    const reset = await t.http().post(`${AUTH}/reset-password`).send({ token: tokenFromMail(mail), new_password: 'attacker chosen phrase 7' });
    expectProblem(reset, 400, 'Invalid or expired token');
    await t.http().post(`${AUTH}/signin`).send({ email: account.email, password: 'a brand new passphrase 9' }).expect(200);
  });

  it('refuses form, text and multipart bodies on the auth routes with 415, so a cross-site form cannot sign a browser in (finding 6)', async () => {
    const account = newAccount();
    const form = new URLSearchParams({ ...account }).toString();
    const asJsonText = JSON.stringify(account);
    for (const [contentType, body] of [
      ['application/x-www-form-urlencoded', form],
      ['text/plain', asJsonText],
      ['multipart/form-data; boundary=x', `--x\r\nContent-Disposition: form-data; name="email"\r\n\r\n${account.email}\r\n--x--\r\n`],
    ]) {
      for (const route of ['signup', 'signin']) {
        const res = await t.http().post(`${AUTH}/${route}`).set('Content-Type', contentType).send(body);
        expectProblem(res, 415, 'Unsupported content type: send application/json');
      }
    }
    // Nothing was created by the form posts; JSON (with a charset too) still works.
    expectProblem(await t.http().post(`${AUTH}/signin`).send({ email: account.email, password: account.password }), 401);
    await t.http().post(`${AUTH}/signup`).set('Content-Type', 'application/json; charset=utf-8').send(asJsonText).expect(201);
    const signin = await t.http().post(`${AUTH}/signin`).set('Content-Type', 'Application/JSON').send(asJsonText).expect(200);
    // A route without a body needs no content type.
    await t.http().post(`${AUTH}/signout`).auth(signin.body.access_token, { type: 'bearer' }).expect(200);
  });

  it('answers a deeply nested body with 422 before transforming it (finding 7)', async () => {
    const levels = 2700; // about 16 KB either way
    const nestedObjects = `{"email":${'{"a":'.repeat(levels)}1${'}'.repeat(levels)},"password":"x"}`;
    const nestedArrays = `{"email":${'['.repeat(levels)}${']'.repeat(levels)},"password":"x"}`;
    for (const body of [nestedObjects, nestedArrays]) {
      const res = await t.http().post(`${AUTH}/signin`).set('Content-Type', 'application/json').send(body);
      expectProblem(res, 422, 'Request validation failed');
      expect(res.body.errors).toEqual([{ field: 'body', message: 'body must not nest objects or arrays more than 5 levels deep' }]);
    }
    // Ordinary nesting in an unknown field is still only dropped.
    await t.http().post(`${AUTH}/signin`).send({ email: 'nobody@example.com', password: 'whatever123', extra: { a: [{ b: 1 }] } }).expect(401);
  });

  it('answers 422 to an email that outgrows 254 characters once lower-cased (finding 9)', async () => {
    // 190 characters as typed; each İ lower-cases to i and a combining dot, 310 in all.
    const email = `${'a'.repeat(64)}@${'İ'.repeat(60)}.${'İ'.repeat(60)}.com`;
    for (const route of ['signup', 'signin', 'forgot-password', 'resend-verification']) {
      const res = await t.http().post(`${AUTH}/${route}`).send({ ...newAccount(), email });
      expectProblem(res, 422, 'Request validation failed');
      expect(res.body.errors).toContainEqual({ field: 'email', message: 'email must be at most 254 characters once normalised' });
    }
  });

  it('refuses invisible and control characters in emails, and folds fullwidth and IDNA look-alikes into one account (finding 8)', async () => {
    const { account } = await signUp(t.http);
    const [local, domain] = account.email.split('@');
    const fullwidth = (text: string) => text.replace(/[!-~]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 0xfee0));
    const signUpAs = (email: string) => t.http().post(`${AUTH}/signup`).send({ ...newAccount(), email });
    const errorsOf = (res: { body: { errors?: { field: string; message: string }[] } }) => res.body.errors?.map((e) => e.message);

    for (const email of [`${local}\u200b@${domain}`, `\u200d${local}@${domain}`, `${local}@exa\u00admple.com`, `${local}\u2060@${domain}`]) {
      const res = await signUpAs(email);
      expectProblem(res, 422, 'Request validation failed');
      expect(errorsOf(res)).toContain('email must not contain spaces, control or invisible characters');
    }
    for (const email of [`"${local}\r\nBcc: victim@example.org"@${domain}`, `"${local}"@${domain}`, `"${local} x"@${domain}`]) {
      const res = await signUpAs(email);
      expectProblem(res, 422, 'Request validation failed');
      expect(errorsOf(res)).toContain('email must not have a quoted local part');
    }

    // The same mailbox written another way is the same account.
    for (const email of [`${fullwidth(local)}@${domain}`, fullwidth(account.email), `${local}@${domain.replace('.', '\u3002')}`]) {
      expectProblem(await signUpAs(email), 400, 'Email already registered');
      await t.http().post(`${AUTH}/signin`).send({ email, password: account.password }).expect(200);
    }
    const idn = await signUp(t.http, { email: `${local}@BÜCHER.example` });
    for (const email of [`${local}@bücher.example`, `${local}@xn--bcher-kva.example`]) {
      await t.http().post(`${AUTH}/signin`).send({ email, password: idn.account.password }).expect(200);
    }
    const me = await t.http().get(`${AUTH}/me`).auth(idn.token, { type: 'bearer' }).expect(200);
    expect(me.body.email).toBe(`${local}@bücher.example`);
  });

  it('answers over-long and undecodable path parameters with problem details, as any unknown session id (finding 12)', async () => {
    const { token } = await signUp(t.http);
    for (const id of ['a'.repeat(101), 'a'.repeat(8000)]) {
      expectProblem(await t.http().delete(`${AUTH}/sessions/${id}`).auth(token, { type: 'bearer' }), 404, 'Session not found');
      expectProblem(await t.http().delete(`${AUTH}/sessions/${id}`), 401);
    }
    const undecodable = await t.http().delete(`${AUTH}/sessions/%zz`).auth(token, { type: 'bearer' });
    expectProblem(undecodable, 400);
    expect(undecodable.headers['x-content-type-options']).toBe('nosniff');
  });

  it('answers resend-verification before it writes the mail, so a known unverified email answers as fast as an unknown one (finding 11)', async () => {
    const { account } = await signUp(t.http);
    await smtp.waitFor(account.email, (m) => /verif/i.test(m.text));
    // The mail's transaction (row lock, cap count, insert) is held back until the answer has arrived.
    const outbox = t.app.get(MailOutbox);
    const enqueue = outbox.enqueueWithinCap.bind(outbox);
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const spy = jest.spyOn(outbox, 'enqueueWithinCap').mockImplementation(async (...args) => (await gate, enqueue(...args)));
    try {
      const request = t.http().post(`${AUTH}/resend-verification`).send({ email: account.email }).then((res) => res);
      const answered = await Promise.race([request, new Promise<'waiting'>((resolve) => setTimeout(() => resolve('waiting'), 3000))]);
      open();
      expect(answered).not.toBe('waiting');
      expect((await request).status).toBe(200);
      await t.drainMail();
      expect(spy).toHaveBeenCalledTimes(1);
    } finally {
      open();
      spy.mockRestore();
    }
    // The welcome, then the new link.
    await waitUntil('the new verification link arrives', () => smtp.to(account.email).length === 2);
  });

  it('leaves no working session from sign-ins that raced a password change (finding 1)', async () => {
    const account = newAccount();
    const { token } = await signUp(t.http, account);
    const newPassword = 'a brand new passphrase 9';
    const [signins, change] = await Promise.all([
      Promise.all(Array.from({ length: 8 }, () => t.http().post(`${AUTH}/signin`).send({ email: account.email, password: account.password }))),
      t.http().post(`${AUTH}/change-password`).auth(token, { type: 'bearer' }).send({ old_password: account.password, new_password: newPassword }),
    ]);
    expect(change.status).toBe(200);
    for (const signin of signins.filter((r) => r.status === 200)) {
      await t.http().get(`${AUTH}/me`).auth(signin.body.access_token, { type: 'bearer' }).expect(401);
      const refreshed = await t.http().post(`${AUTH}/refresh`).send({ refresh_token: signin.body.refresh_token });
      expectProblem(refreshed, 401, 'Invalid or expired refresh token');
    }
    for (const signin of signins) expect([200, 401]).toContain(signin.status);
  });

  it('opens no session for a sign-in whose password check finished after a password change committed (finding 1, made deterministic)', async () => {
    const account = newAccount();
    const { token } = await signUp(t.http, account);
    // The sign-in reads the account, then its hash check is held until the change has answered.
    const hold = holdNextCall(t.app.get(PasswordHasher), 'verify');
    try {
      const signin = t.http().post(`${AUTH}/signin`).send({ email: account.email, password: account.password }).then((res) => res);
      await hold.reached;
      const newPassword = 'a brand new passphrase 9';
      await t.http().post(`${AUTH}/change-password`).auth(token, { type: 'bearer' }).send({ old_password: account.password, new_password: newPassword }).expect(200);
      hold.release();
      expectProblem(await signin, 401, 'Invalid email or password');
    } finally {
      hold.release();
      hold.restore();
    }
  });
});

/**
 * Finding 5: behind a trusted proxy, an attacker with many addresses must not be able to keep the owner
 * out. The proxy is supertest's loopback connection; X-Forwarded-For names the client.
 */
describe.each(matrix(DATABASES))('hardening (issue 12): the owner keeps a way in on %s with %s', (databaseKind, adapter) => {
  const { t, smtp } = useTestApp(databaseKind, {
    adapter,
    env: { TRUST_PROXY: 'loopback', SIGNIN_MAX_FAILURES: String(MAX_FAILURES), MAIL_REQUESTS_PER_ACCOUNT_PER_HOUR: '10', PASSWORD_RESET_MAILS_PER_HOUR: '3' },
  });
  let next = 0;
  const attacker = () => `198.51.${Math.floor(++next / 250)}.${next % 250}`;
  const OWNER_HOME = '203.0.113.10';
  const from = (address: string) => ({
    signin: (email: string, password: string) => t.http().post(`${AUTH}/signin`).set('X-Forwarded-For', address).send({ email, password }),
    forgot: (email: string) => t.http().post(`${AUTH}/forgot-password`).set('X-Forwarded-For', address).send({ email }),
    reset: (token: string, new_password: string) =>
      t.http().post(`${AUTH}/reset-password`).set('X-Forwarded-For', address).send({ token, new_password }),
  });
  const resetMails = (email: string) => smtp.to(email).filter((m) => /reset/i.test(m.subject));

  it('lets the owner sign in from an address it signed in from before while rotating addresses lock the account (finding 5)', async () => {
    const { account } = await signUp(t.http);
    await from(OWNER_HOME).signin(account.email, account.password).expect(200);

    for (let i = 0; i < MAX_FAILURES + 5; i++) await from(attacker()).signin(account.email, `guess ${i}`);
    expectProblem(await from(attacker()).signin(account.email, account.password), 429, 'Too many failed sign-in attempts for this account, try again later');
    expectProblem(await from('192.0.2.200').signin(account.email, account.password), 429); // an address the account never used

    await from(OWNER_HOME).signin(account.email, account.password).expect(200);
    // Someone behind the owner's address gets a smaller budget of its own, not the account's.
    for (let i = 0; i < MAX_FAILURES; i++) await from(attacker()).signin(account.email, `guess again ${i}`);
    const budget = Math.floor(MAX_FAILURES / 2);
    for (let i = 0; i < budget; i++) expectProblem(await from(OWNER_HOME).signin(account.email, `typo ${i}`), 401);
    expectProblem(await from(OWNER_HOME).signin(account.email, account.password), 429);
  });

  it('lets the owner reset from a new address while rotating addresses flood forgot-password, and signs in from there afterwards (finding 5)', async () => {
    const { account } = await signUp(t.http);
    for (let i = 0; i < 15; i++) await from(attacker()).forgot(account.email);
    for (let i = 0; i < MAX_FAILURES + 5; i++) await from(attacker()).signin(account.email, `guess ${i}`);
    await t.drainMail();
    // The mailbox is protected: strangers got it three reset mails, no more.
    expect(resetMails(account.email)).toHaveLength(3);

    const travelling = from('192.0.2.50');
    await travelling.forgot(account.email).expect(200);
    await t.drainMail();
    // The last link the owner received still works: the stranger's requests past the cap void nothing.
    const newPassword = 'a new passphrase for travel 5';
    await travelling.reset(tokenFromMail(resetMails(account.email).at(-1)!), newPassword).expect(200);
    for (let i = 0; i < MAX_FAILURES + 5; i++) await from(attacker()).signin(account.email, `guess after ${i}`);
    await travelling.signin(account.email, newPassword).expect(200);
  });

  it('still mails a reset link to the owner asking from a known address after strangers used up the hourly mails (finding 5)', async () => {
    const { account } = await signUp(t.http);
    await from(OWNER_HOME).signin(account.email, account.password).expect(200);
    for (let i = 0; i < 15; i++) await from(attacker()).forgot(account.email);
    await t.drainMail();
    expect(resetMails(account.email)).toHaveLength(3);

    await from(OWNER_HOME).forgot(account.email).expect(200);
    await t.drainMail();
    const mails = resetMails(account.email);
    expect(mails).toHaveLength(4);
    await from(OWNER_HOME).reset(tokenFromMail(mails.at(-1)!), 'the owner chose this one 5').expect(200);
  });
});
