import { AuthErrors } from '../src/common/auth.errors';
import { base32Decode, hotp, stepAt } from '../src/mfa/totp';
import { Housekeeping } from '../src/module/housekeeping';
import { DATABASES, sql } from './support/databases';
import { expectProblem, newAccount, SignedUp, signUp } from './support/fixtures';
import { ReceivedMail, tokenFromMail } from './support/smtp';
import { matrix, useTestApp } from './support/test-app';

const AUTH = '/api/v1/auth';
const EMAIL_CHANGE_URL = 'https://app.example.test/confirm-email';
const MAX_FAILURES = 3;
const MINUTE = 60_000;

describe.each(matrix(DATABASES))('account self-service on %s with %s', (databaseKind, adapter) => {
  const { t, database, smtp } = useTestApp(databaseKind, {
    adapter,
    env: { EMAIL_CHANGE_URL, SIGNIN_MAX_FAILURES: String(MAX_FAILURES), USER_CACHE_TTL_SECONDS: '5' },
  });
  /** How far the app's clock runs ahead of the machine's (TOTP codes are computed on it). */
  let offsetMs = 0;
  const advance = (ms: number) => {
    offsetMs += ms;
    t.advanceClock(ms);
  };
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

  describe('POST /change-email and POST /confirm-email-change', () => {
    const changeEmail = (token: string, body: object) => t.http().post(`${AUTH}/change-email`).auth(token, { type: 'bearer' }).send(body);
    const confirm = (token: string) => t.http().post(`${AUTH}/confirm-email-change`).send({ token });
    const linkMailTo = (address: string) => smtp.waitFor(address, (m) => m.text.includes(`${EMAIL_CHANGE_URL}?token=`));
    const noticeTo = (address: string) => smtp.waitFor(address, (m) => /email address was requested/.test(m.subject));
    const linkIn = (mail: ReceivedMail) => mail.text.match(/https?:\/\/\S+/)![0];
    const eventsOf = async (userId: number) =>
      (await sql(database, 'SELECT type, session_id, ip, details FROM auth_events WHERE user_id = $1 ORDER BY id', [userId])) as {
        type: string;
        session_id: string | null;
        ip: string | null;
        details: string | null;
      }[];

    it('mails a link to the new address and a notice to the old one, and changes the email only when the link is followed', async () => {
      const user = await signUp(t.http);
      const newEmail = newAccount().email;
      const res = await changeEmail(user.token, { new_email: newEmail, password: user.account.password }).expect(200);
      expect(res.body).toEqual({ message: 'Check your inbox to confirm the new address' });

      const link = await linkMailTo(newEmail);
      expect(linkIn(link).startsWith(`${EMAIL_CHANGE_URL}?token=`)).toBe(true);
      expect(link.html).toContain(`href="${EMAIL_CHANGE_URL}?token=`);
      const notice = await noticeTo(user.account.email);
      expect(notice.text).not.toMatch(/https?:\/\//); // a notice has no link to click
      expect(notice.text).not.toContain(newEmail); // nor the new address: the requester may not be the owner
      // Nothing changed yet: the old address still signs in, the new one does not.
      expect((await me(user.token).expect(200)).body.email).toBe(user.account.email);
      await t.http().post(`${AUTH}/signin`).send({ email: newEmail, password: user.account.password }).expect(401);

      expect((await confirm(tokenFromMail(link)).expect(200)).body).toEqual({ message: 'Email changed successfully' });
      const changed = (await me(user.token).expect(200)).body; // the cached copy was dropped
      expect(changed).toMatchObject({ email: newEmail, is_verified: true });
      await t.http().post(`${AUTH}/signin`).send({ email: newEmail, password: user.account.password }).expect(200);
      expectProblem(await t.http().post(`${AUTH}/signin`).send(user.account), 401, AuthErrors.INVALID_CREDENTIALS);
      // Single use.
      expectProblem(await confirm(tokenFromMail(link)), 400, 'Invalid or expired token');

      const events = await eventsOf(user.userId);
      expect(events.map((e) => e.type)).toEqual(expect.arrayContaining(['email_change_requested', 'email_changed']));
      expect(JSON.stringify(events)).not.toContain('@'); // no address in the audit log
      // Only the hash of the token is stored.
      const rows = JSON.stringify(await sql(database, 'SELECT * FROM email_change_tokens'));
      expect(rows).not.toContain(tokenFromMail(link));
    });

    it('stores the canonical form of the new address, and refuses a look-alike of a taken one like the address itself', async () => {
      const user = await signUp(t.http);
      const holder = await signUp(t.http);
      const local = newAccount().email.split('@')[0];
      await changeEmail(user.token, { new_email: `${local.toUpperCase()}@EXAMPLE.com`, password: user.account.password }).expect(200);
      await confirm(tokenFromMail(await linkMailTo(`${local}@example.com`))).expect(200);
      expect((await me(user.token).expect(200)).body.email).toBe(`${local}@example.com`);

      // Fullwidth letters: the same mailbox as the holder's once folded.
      const fullwidth = holder.account.email.replace(/[a-z]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 0xfee0));
      const other = await signUp(t.http);
      await changeEmail(other.token, { new_email: fullwidth, password: other.account.password }).expect(200);
      await smtp.waitFor(holder.account.email, (m) => /tried to use your email address/.test(m.subject));
    });

    it('answers the same when the new address has an account: its owner gets a notice instead, and nothing changes', async () => {
      const user = await signUp(t.http);
      const holder = await signUp(t.http);
      const free = await changeEmail(user.token, { new_email: newAccount().email, password: user.account.password }).expect(200);
      const taken = await changeEmail(user.token, { new_email: holder.account.email, password: user.account.password }).expect(200);
      expect(taken.body).toEqual(free.body);
      const notice = await smtp.waitFor(holder.account.email, (m) => /tried to use your email address/.test(m.subject));
      expect(notice.text).not.toMatch(/https?:\/\//);
      expect(notice.text).not.toContain(user.account.email);
      await t.drainMail();
      expect(smtp.to(holder.account.email).filter((m) => m.text.includes(EMAIL_CHANGE_URL))).toEqual([]);
      // The old address hears of both requests, alike.
      expect(smtp.to(user.account.email).filter((m) => /email address was requested/.test(m.subject))).toHaveLength(2);
      // The newer request voided the older link, and made none of its own.
      expect(await sql(database, 'SELECT id FROM email_change_tokens WHERE user_id = $1', [user.userId])).toEqual([]);
      expect((await me(user.token).expect(200)).body.email).toBe(user.account.email);
      expect((await me(holder.token).expect(200)).body.email).toBe(holder.account.email);
      // The events say the same for both.
      const requested = (await eventsOf(user.userId)).filter((e) => e.type === 'email_change_requested');
      expect(requested).toHaveLength(2);
      expect(requested[0].details).toEqual(requested[1].details);
    });

    it('ends every other session of the account, and keeps the one that asked', async () => {
      const user = await signUp(t.http);
      const other = await t.http().post(`${AUTH}/signin`).send(user.account).expect(200);
      const newEmail = newAccount().email;
      await changeEmail(user.token, { new_email: newEmail, password: user.account.password }).expect(200);
      // Confirmed with no bearer at all: the link may be opened in another browser.
      await confirm(tokenFromMail(await linkMailTo(newEmail))).expect(200);
      await me(user.token).expect(200);
      expectProblem(await me(other.body.access_token), 401, AuthErrors.INVALID_ACCESS_TOKEN);
      expectProblem(await t.http().post(`${AUTH}/refresh`).send({ refresh_token: other.body.refresh_token }), 401, AuthErrors.INVALID_REFRESH_TOKEN);
      const emailChanged = (await eventsOf(user.userId)).find((e) => e.type === 'email_changed')!;
      const sessions = (await t.http().get(`${AUTH}/sessions`).auth(user.token, { type: 'bearer' }).expect(200)).body as { id: string }[];
      expect(sessions.map((s) => s.id)).toEqual([emailChanged.session_id]);
    });

    it('voids an older link when a newer request comes, lets a link work for 30 minutes only, and redeems one of parallel confirmations', async () => {
      const user = await signUp(t.http);
      const [first, second, third] = [newAccount().email, newAccount().email, newAccount().email];
      await changeEmail(user.token, { new_email: first, password: user.account.password }).expect(200);
      const firstLink = tokenFromMail(await linkMailTo(first));
      await changeEmail(user.token, { new_email: second, password: user.account.password }).expect(200);
      const secondLink = tokenFromMail(await linkMailTo(second));
      expectProblem(await confirm(firstLink), 400, 'Invalid or expired token');

      advance(30 * MINUTE + 1000);
      expectProblem(await confirm(secondLink), 400, 'Invalid or expired token');

      await changeEmail(user.token, { new_email: third, password: user.account.password }).expect(200);
      const thirdLink = tokenFromMail(await linkMailTo(third));
      advance(29 * MINUTE);
      const results = await Promise.all(Array.from({ length: 10 }, () => confirm(thirdLink)));
      expect(results.map((r) => r.status).sort()).toEqual([200, ...Array(9).fill(400)]);
      expect((await me(user.token).expect(200)).body.email).toBe(third);
    });

    it('forgets used and expired changes at the hourly housekeeping, and keeps pending ones', async () => {
      const used = await signUp(t.http);
      const usedEmail = newAccount().email;
      await changeEmail(used.token, { new_email: usedEmail, password: used.account.password }).expect(200);
      await confirm(tokenFromMail(await linkMailTo(usedEmail))).expect(200);
      const expired = await signUp(t.http);
      const expiredEmail = newAccount().email;
      await changeEmail(expired.token, { new_email: expiredEmail, password: expired.account.password }).expect(200);
      await linkMailTo(expiredEmail);
      advance(30 * MINUTE + 1000);
      const pending = await signUp(t.http);
      const pendingEmail = newAccount().email;
      await changeEmail(pending.token, { new_email: pendingEmail, password: pending.account.password }).expect(200);
      await linkMailTo(pendingEmail);
      await t.app.get(Housekeeping).run();
      const left = (await sql(database, 'SELECT user_id FROM email_change_tokens WHERE user_id IN ($1, $2, $3)', [used.userId, expired.userId, pending.userId])) as { user_id: number }[];
      expect(left).toEqual([{ user_id: pending.userId }]);
    });

    it('refuses a wrong password with 400, counted like a failed sign-in: past the limit 429, even with the right one', async () => {
      const user = await signUp(t.http);
      for (let i = 0; i < MAX_FAILURES; i += 1) {
        expectProblem(await changeEmail(user.token, { new_email: newAccount().email, password: 'not the password' }), 400, AuthErrors.INCORRECT_CURRENT_PASSWORD);
      }
      const limited = await changeEmail(user.token, { new_email: newAccount().email, password: user.account.password });
      expectProblem(limited, 429, AuthErrors.TOO_MANY_SIGNIN_FAILURES);
      expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
      // The same count as sign-in's.
      expectProblem(await t.http().post(`${AUTH}/signin`).send(user.account), 429, AuthErrors.TOO_MANY_SIGNIN_FAILURES);
      advance(15 * MINUTE + 1000);
      await changeEmail(user.token, { new_email: newAccount().email, password: user.account.password }).expect(200);
      await t.drainMail();
      expect(smtp.to(user.account.email).filter((m) => /email address was requested/.test(m.subject))).toHaveLength(1);
    });

    it('sends mail for at most 5 requests an hour per account, and answers the same past that', async () => {
      const user = await signUp(t.http);
      const addresses = Array.from({ length: 7 }, () => newAccount().email);
      for (const address of addresses) {
        const res = await changeEmail(user.token, { new_email: address, password: user.account.password }).expect(200);
        expect(res.body).toEqual({ message: 'Check your inbox to confirm the new address' });
      }
      await t.drainMail();
      expect(smtp.to(user.account.email).filter((m) => /email address was requested/.test(m.subject))).toHaveLength(5);
      expect(addresses.map((a) => smtp.to(a).length)).toEqual([1, 1, 1, 1, 1, 0, 0]);
      // The capped requests changed nothing: the fifth link still works.
      advance(MINUTE);
      await confirm(tokenFromMail(await linkMailTo(addresses[4]))).expect(200);
      advance(60 * MINUTE);
      const later = newAccount().email;
      await changeEmail(user.token, { new_email: later, password: user.account.password }).expect(200);
      await linkMailTo(later);
    });

    it("answers 400 Email already registered when the address was taken before the link was followed, and changes nothing", async () => {
      const user = await signUp(t.http);
      const wanted = newAccount();
      await changeEmail(user.token, { new_email: wanted.email, password: user.account.password }).expect(200);
      const link = tokenFromMail(await linkMailTo(wanted.email));
      await signUp(t.http, { email: wanted.email });
      expectProblem(await confirm(link), 400, AuthErrors.EMAIL_ALREADY_REGISTERED);
      expect((await me(user.token).expect(200)).body.email).toBe(user.account.email);
    });

    it('answers 422 for a bad body or a missing password, 401 without the bearer', async () => {
      const user = await signUp(t.http);
      for (const body of [{ password: user.account.password }, { new_email: 'not an email', password: user.account.password }, { new_email: newAccount().email }, { new_email: newAccount().email, password: 42 }]) {
        const res = await changeEmail(user.token, body);
        expectProblem(res, 422, 'Request validation failed');
        expect(res.body.errors.length).toBeGreaterThan(0);
      }
      expectProblem(await t.http().post(`${AUTH}/change-email`).send({ new_email: newAccount().email, password: 'x' }), 401, AuthErrors.NOT_AUTHENTICATED);
      for (const body of [{}, { token: '' }, { token: 42 }]) expectProblem(await t.http().post(`${AUTH}/confirm-email-change`).send(body), 422);
      expectProblem(await confirm('x'.repeat(43)), 400, 'Invalid or expired token');
    });

    it('asks an account with TOTP for an aal2 session', async () => {
      const user = await signUp(t.http);
      const { aal1, aal2 } = await enableTotp(user);
      expectProblem(await changeEmail(aal1, { new_email: newAccount().email, password: user.account.password }), 403, AuthErrors.ADDITIONAL_AUTH_REQUIRED);
      await changeEmail(aal2, { new_email: newAccount().email, password: user.account.password }).expect(200);
    });

    (databaseKind === 'postgres' ? it : it.skip)('lets an account without a password change its email within 5 minutes of signing in, and answers 403 after', async () => {
      // What the OIDC feature's accounts look like: no password hash (the column becomes nullable there).
      await sql(database, 'ALTER TABLE users ALTER COLUMN hashed_password DROP NOT NULL');
      const user = await signUp(t.http);
      const refresh = (await t.http().post(`${AUTH}/signin`).send(user.account).expect(200)).body.refresh_token as string;
      await sql(database, 'UPDATE users SET hashed_password = NULL WHERE id = $1', [user.userId]);
      const newEmail = newAccount().email;
      await changeEmail(user.token, { new_email: newEmail }).expect(200);
      await linkMailTo(newEmail);
      advance(5 * MINUTE + 1000);
      expectProblem(await changeEmail(user.token, { new_email: newAccount().email }), 403, AuthErrors.RECENT_SIGNIN_REQUIRED);
      // A refresh is no new sign-in: the session's own sign-in time counts.
      const refreshed = (await t.http().post(`${AUTH}/refresh`).send({ refresh_token: refresh }).expect(200)).body.access_token as string;
      expectProblem(await changeEmail(refreshed, { new_email: newAccount().email }), 403, AuthErrors.RECENT_SIGNIN_REQUIRED);
    });
  });

  /** Turns TOTP on: the token of the session that did it (aal1 until refreshed) and an aal2 one after a second-factor sign-in. */
  async function enableTotp(user: SignedUp): Promise<{ aal1: string; aal2: string; secret: Buffer }> {
    const setup = await t.http().post(`${AUTH}/mfa/totp/setup`).auth(user.token, { type: 'bearer' }).expect(200);
    const secret = base32Decode(setup.body.secret);
    const code = (offset: number) => hotp(secret, stepAt(Date.now() + offsetMs) + offset);
    await t.http().post(`${AUTH}/mfa/totp/confirm`).auth(user.token, { type: 'bearer' }).send({ code: code(-1) }).expect(200);
    const challenge = await t.http().post(`${AUTH}/signin`).send(user.account).expect(403);
    const signedIn = await t.http().post(`${AUTH}/signin/mfa`).send({ mfa_token: challenge.body.mfa_token, code: code(0) }).expect(200);
    return { aal1: user.token, aal2: signedIn.body.access_token, secret };
  }
});
