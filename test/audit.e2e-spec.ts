import { createHash, randomInt } from 'node:crypto';
import { AUTH_EVENT_TYPES, AuditService } from '../src/audit/audit.service';
import { TransactionRunner } from '../src/common/transaction-runner';
import { base32Decode, hotp, stepAt, TOTP_STEP_SECONDS } from '../src/mfa/totp';
import { Housekeeping } from '../src/module/housekeeping';
import { DATABASES, sql, TestDatabase } from './support/databases';
import { expectProblem, newAccount, NewAccount, signUp } from './support/fixtures';
import { tokenFromMail } from './support/smtp';
import { matrix, useTestApp } from './support/test-app';

const AUTH = '/api/v1/auth';
const STEP_MS = TOTP_STEP_SECONDS * 1000;
const DAY_MS = 24 * 3600 * 1000;
const UA = 'audit-suite/1.0';

interface EventRow {
  id: number | string;
  type: string;
  user_id: number | null;
  session_id: string | null;
  ip: string | null;
  user_agent: string | null;
  details: string | null;
}

async function eventsOf(database: TestDatabase, userId: number): Promise<EventRow[]> {
  return (await sql(database, 'SELECT * FROM auth_events WHERE user_id = $1 ORDER BY id', [userId])) as EventRow[];
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** Passwords of every kind the policy takes: spaces, accents, other scripts, emoji. */
function generatedPassword(): string {
  const alphabet = ['a', 'Z', '7', ' ', 'é', 'ß', 'ж', '中', '😀', '!', '"', '\\', '%', '_'];
  const words = Array.from({ length: 4 }, () => Array.from({ length: 4 + randomInt(4) }, () => alphabet[randomInt(alphabet.length)]).join(''));
  return `${words.join(' ')} ${randomInt(1e9)}`;
}

describe.each(matrix(DATABASES))('audit log on %s with %s', (databaseKind, adapter) => {
  const { t, database, smtp } = useTestApp(databaseKind, {
    adapter,
    // A spent refresh token is reuse at once; X-Forwarded-For from the loopback proxy counts.
    env: { REFRESH_TOKEN_REUSE_GRACE_SECONDS: '0', TRUST_PROXY: 'loopback', AUDIT_RETENTION_DAYS: '30' },
  });
  let clockMs = 0;
  const advance = (ms: number) => {
    clockMs += ms;
    t.advanceClock(ms);
  };
  const code = (secret: Buffer) => hotp(secret, stepAt(Date.now() + clockMs));
  const client = { 'User-Agent': UA, 'X-Forwarded-For': '198.51.100.66, 203.0.113.9' };
  const bearer = (token: string) => ({ ...client, Authorization: `Bearer ${token}` });

  it('records a sign-up and a sign-in with the client address after the proxy rules, the user agent and the session', async () => {
    const account = newAccount();
    const created = await t.http().post(`${AUTH}/signup`).set(client).send(account).expect(201);
    const signin = await t.http().post(`${AUTH}/signin`).set(client).send(account).expect(200);
    const sessions = await t.http().get(`${AUTH}/sessions`).set(bearer(signin.body.access_token)).expect(200);
    const events = await eventsOf(database, created.body.user.id);
    expect(events.map((e) => e.type)).toEqual(['signup', 'signin']);
    // The proxy on loopback is trusted; the hop before it (what the client wrote) is not.
    for (const event of events) expect(event).toMatchObject({ ip: '203.0.113.9', user_agent: UA });
    const sessionIds = (sessions.body as { id: string }[]).map((s) => s.id);
    expect(sessionIds).toEqual(expect.arrayContaining(events.map((e) => e.session_id)));
    expect(JSON.parse(events[1].details!)).toEqual({ amr: ['pwd'] });
  });

  it('records a failed sign-in on its own: the event, and no session', async () => {
    const { account, userId } = await signUp(t.http);
    const sessionsBefore = await sql(database, 'SELECT id FROM user_sessions WHERE user_id = $1', [userId]);
    expectProblem(await t.http().post(`${AUTH}/signin`).set(client).send({ ...account, password: 'not the password' }), 401);
    const failed = (await eventsOf(database, userId)).filter((e) => e.type === 'signin_failed');
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ session_id: null, ip: '203.0.113.9', user_agent: UA });
    expect(JSON.parse(failed[0].details!)).toEqual({ reason: 'invalid_credentials' });
    expect(await sql(database, 'SELECT id FROM user_sessions WHERE user_id = $1', [userId])).toEqual(sessionsBefore);

    const unknownUa = `unknown-email-${randomInt(1e9)}`;
    await t.http().post(`${AUTH}/signin`).set('User-Agent', unknownUa).send({ email: 'nobody-here@example.com', password: 'whatever it is' }).expect(401);
    const anonymous = (await sql(database, 'SELECT * FROM auth_events WHERE user_agent = $1', [unknownUa])) as EventRow[];
    expect(anonymous).toEqual([expect.objectContaining({ type: 'signin_failed', user_id: null })]);
    expect(JSON.stringify(anonymous)).not.toContain('nobody-here');
  });

  it('records a refresh token reuse with the revocation it causes', async () => {
    const { account, userId } = await signUp(t.http);
    const signin = await t.http().post(`${AUTH}/signin`).send(account).expect(200);
    await t.http().post(`${AUTH}/refresh`).send({ refresh_token: signin.body.refresh_token }).expect(200);
    advance(1000);
    await t.http().post(`${AUTH}/refresh`).set(client).send({ refresh_token: signin.body.refresh_token }).expect(401);
    const reused = (await eventsOf(database, userId)).filter((e) => e.type === 'refresh_reused');
    expect(reused).toHaveLength(1);
    const [session] = (await sql(database, 'SELECT revoked_at FROM user_sessions WHERE id = $1', [reused[0].session_id])) as { revoked_at: unknown }[];
    expect(session.revoked_at).not.toBeNull();
  });

  // On PostgreSQL ids come from a sequence: an event must draw its id only once it holds the ordering
  // lock, or a reader could page past an id that commits later (AuditService.record).
  (databaseKind === 'postgres' ? it : it.skip)('draws an event’s id only after the transaction ahead of it committed', async () => {
    const audit = t.app.get(AuditService);
    const transactions = t.app.get(TransactionRunner);
    const event = (userAgent: string) => ({ type: 'signin' as const, userId: null, client: { ip: null, userAgent } });
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let recorded!: () => void;
    const firstRecorded = new Promise<void>((resolve) => (recorded = resolve));
    const first = transactions.run(async (manager) => {
      await audit.record(manager, event('order-first'));
      recorded();
      await held;
    });
    await firstRecorded;
    let secondCommitted = false;
    const second = transactions.run((manager) => audit.record(manager, event('order-second'))).then(() => (secondCommitted = true));
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(secondCommitted).toBe(false);
    // Drawn now, while the second event waits: had it drawn its id before waiting, this one would be higher.
    const [{ probe }] = (await sql(database, "SELECT nextval(pg_get_serial_sequence('auth_events', 'id')) AS probe")) as { probe: string }[];
    release();
    await Promise.all([first, second]);
    const rows = (await sql(database, "SELECT id, user_agent FROM auth_events WHERE user_agent LIKE 'order-%' ORDER BY id")) as { id: string; user_agent: string }[];
    expect(rows.map((row) => row.user_agent)).toEqual(['order-first', 'order-second']);
    expect(BigInt(rows[1].id)).toBeGreaterThan(BigInt(probe));
  });

  it('leaves no event when the change fails with it, and no change when its event fails', async () => {
    if (databaseKind === 'postgres') {
      await sql(database, `CREATE OR REPLACE FUNCTION refuse_for_test() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$`);
      await sql(database, `CREATE TRIGGER refuse_event BEFORE INSERT ON auth_events FOR EACH ROW WHEN (NEW.user_agent = 'fail-event') EXECUTE FUNCTION refuse_for_test()`);
      // Fires at COMMIT, after the event was inserted: the whole transaction, event included, rolls back.
      await sql(database, `CREATE CONSTRAINT TRIGGER refuse_session AFTER INSERT ON user_sessions DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.user_agent = 'fail-commit') EXECUTE FUNCTION refuse_for_test()`);
    } else {
      await sql(database, `CREATE TRIGGER refuse_event BEFORE INSERT ON auth_events WHEN NEW.user_agent = 'fail-event' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`);
    }
    try {
      const account = newAccount();
      expectProblem(await t.http().post(`${AUTH}/signup`).set('User-Agent', 'fail-event').send(account), 500, 'Error during registration');
      expect(await sql(database, 'SELECT id FROM users WHERE email = $1', [account.email])).toEqual([]);
      expect(await sql(database, "SELECT id FROM auth_events WHERE user_agent = 'fail-event'")).toEqual([]);

      const { account: existing, userId } = await signUp(t.http);
      const before = await eventsOf(database, userId);
      expectProblem(await t.http().post(`${AUTH}/signin`).set('User-Agent', 'fail-event').send(existing), 500);
      expect(await eventsOf(database, userId)).toEqual(before);
      expect(await sql(database, "SELECT id FROM user_sessions WHERE user_agent = 'fail-event'")).toEqual([]);

      if (databaseKind === 'postgres') {
        const late = newAccount();
        expectProblem(await t.http().post(`${AUTH}/signup`).set('User-Agent', 'fail-commit').send(late), 500);
        expect(await sql(database, 'SELECT id FROM users WHERE email = $1', [late.email])).toEqual([]);
        expectProblem(await t.http().post(`${AUTH}/signin`).set('User-Agent', 'fail-commit').send(existing), 500);
        expect(await eventsOf(database, userId)).toEqual(before);
        expect(await sql(database, "SELECT id FROM auth_events WHERE user_agent = 'fail-commit'")).toEqual([]);
      }
    } finally {
      await sql(database, databaseKind === 'postgres' ? 'DROP TRIGGER refuse_event ON auth_events' : 'DROP TRIGGER refuse_event');
      if (databaseKind === 'postgres') await sql(database, 'DROP TRIGGER refuse_session ON user_sessions');
    }
  });

  it('never writes a password, token, code or hash used in any flow (generated accounts, every flow)', async () => {
    const secrets = new Set<string>();
    const typesSeen = new Set<string>();
    const keep = (...values: (string | undefined)[]) => values.forEach((value) => value && secrets.add(value));
    for (let round = 0; round < 3; round++) {
      const password = generatedPassword();
      const account: NewAccount = newAccount({ password });
      keep(password);
      const created = await t.http().post(`${AUTH}/signup`).set(client).send(account).expect(201);
      const userId = created.body.user.id as number;
      keep(created.body.access_token, created.body.refresh_token);
      const welcome = await smtp.waitFor(account.email, (m) => /verif/i.test(m.text));
      const verification = tokenFromMail(welcome);
      keep(verification);
      await t.http().post(`${AUTH}/verify-email`).set(client).send({ token: verification }).expect(200);

      const wrong = generatedPassword();
      keep(wrong);
      await t.http().post(`${AUTH}/signin`).set(client).send({ email: account.email, password: wrong }).expect(401);
      const signin = await t.http().post(`${AUTH}/signin`).set(client).send(account).expect(200);
      keep(signin.body.access_token, signin.body.refresh_token);
      const refreshed = await t.http().post(`${AUTH}/refresh`).set(client).send({ refresh_token: signin.body.refresh_token }).expect(200);
      keep(refreshed.body.access_token, refreshed.body.refresh_token);
      advance(1000);
      await t.http().post(`${AUTH}/refresh`).set(client).send({ refresh_token: signin.body.refresh_token }).expect(401);

      const other = await t.http().post(`${AUTH}/signin`).set(client).send(account).expect(200);
      keep(other.body.access_token, other.body.refresh_token);
      await t.http().delete(`${AUTH}/sessions/${(await t.http().get(`${AUTH}/sessions`).set(bearer(other.body.access_token))).body[0].id}`).set(bearer(other.body.access_token)).expect(200);

      const third = await t.http().post(`${AUTH}/signin`).set(client).send(account).expect(200);
      keep(third.body.access_token, third.body.refresh_token);
      const setup = await t.http().post(`${AUTH}/mfa/totp/setup`).set(bearer(third.body.access_token)).expect(200);
      keep(setup.body.secret, setup.body.otpauth_url);
      const secret = base32Decode(setup.body.secret);
      advance(STEP_MS);
      const confirmCode = code(secret);
      keep(confirmCode);
      const confirmed = await t.http().post(`${AUTH}/mfa/totp/confirm`).set(bearer(third.body.access_token)).send({ code: confirmCode }).expect(200);
      const recoveryCodes = confirmed.body.recovery_codes as string[];
      keep(...recoveryCodes);

      const challenge = await t.http().post(`${AUTH}/signin`).set(client).send(account).expect(403);
      keep(challenge.body.mfa_token);
      await t.http().post(`${AUTH}/signin/mfa`).set(client).send({ mfa_token: challenge.body.mfa_token, code: '000000' }).expect(401);
      advance(STEP_MS);
      const mfaCode = code(secret);
      keep(mfaCode);
      const aal2 = await t.http().post(`${AUTH}/signin/mfa`).set(client).send({ mfa_token: challenge.body.mfa_token, code: mfaCode }).expect(200);
      keep(aal2.body.access_token, aal2.body.refresh_token);
      const challenge2 = await t.http().post(`${AUTH}/signin`).set(client).send(account).expect(403);
      keep(challenge2.body.mfa_token);
      const byRecovery = await t.http().post(`${AUTH}/signin/mfa`).set(client).send({ mfa_token: challenge2.body.mfa_token, code: recoveryCodes[0] }).expect(200);
      keep(byRecovery.body.access_token, byRecovery.body.refresh_token);
      const replaced = await t.http().post(`${AUTH}/mfa/recovery-codes`).set(bearer(aal2.body.access_token)).expect(200);
      keep(...(replaced.body.recovery_codes as string[]));
      for (const row of (await sql(database, 'SELECT secret FROM totp_factors WHERE user_id = $1', [userId])) as { secret: string }[]) keep(row.secret);
      advance(STEP_MS);
      const disableCode = code(secret);
      keep(disableCode);
      await t.http().post(`${AUTH}/mfa/totp/disable`).set(bearer(aal2.body.access_token)).send({ code: disableCode }).expect(200);

      // The profile: a new full name (a generated secret, so the leak check would see it in an event).
      const fullName = generatedPassword().slice(0, 60);
      keep(fullName);
      await t.http().patch(`${AUTH}/me`).set(bearer(aal2.body.access_token)).send({ full_name: fullName }).expect(200);

      const newPassword = generatedPassword();
      keep(newPassword);
      await t.http().post(`${AUTH}/change-password`).set(bearer(aal2.body.access_token)).send({ old_password: password, new_password: newPassword }).expect(200);
      await t.http().post(`${AUTH}/forgot-password`).set(client).send({ email: account.email }).expect(200);
      await t.drainMail();
      const resetToken = tokenFromMail(await smtp.waitFor(account.email, (m) => /reset/i.test(m.subject)));
      const resetPassword = generatedPassword();
      keep(resetToken, resetPassword);
      await t.http().post(`${AUTH}/reset-password`).set(client).send({ token: resetToken, new_password: resetPassword }).expect(200);
      const last = await t.http().post(`${AUTH}/signin`).set(client).send({ email: account.email, password: resetPassword }).expect(200);
      keep(last.body.access_token, last.body.refresh_token);
      const fourth = await t.http().post(`${AUTH}/signin`).set(client).send({ email: account.email, password: resetPassword }).expect(200);
      await t.http().post(`${AUTH}/signout`).set(bearer(last.body.access_token)).expect(200);
      await t.http().post(`${AUTH}/signout-all`).set(bearer(fourth.body.access_token)).expect(200);

      // The email moves to another address, and then the account is deleted.
      const fifth = await t.http().post(`${AUTH}/signin`).set(client).send({ email: account.email, password: resetPassword }).expect(200);
      keep(fifth.body.access_token, fifth.body.refresh_token);
      const movedTo = `moved-${account.email}`;
      await t.http().post(`${AUTH}/change-email`).set(client).set(bearer(fifth.body.access_token)).send({ new_email: movedTo, password: resetPassword }).expect(200);
      const changeToken = tokenFromMail(await smtp.waitFor(movedTo, (m) => m.text.includes('token=')));
      keep(changeToken);
      await t.http().post(`${AUTH}/confirm-email-change`).set(client).send({ token: changeToken }).expect(200);

      for (const row of (await sql(database, 'SELECT hashed_password FROM users WHERE id = $1', [userId])) as { hashed_password: string }[]) keep(row.hashed_password);
      for (const table of ['refresh_tokens', 'password_reset_tokens', 'email_verification_tokens', 'mfa_challenges', 'email_change_tokens']) {
        for (const row of (await sql(database, `SELECT token_hash FROM ${table}`)) as { token_hash: string }[]) keep(row.token_hash);
      }
      for (const row of (await sql(database, 'SELECT code_hash FROM recovery_codes')) as { code_hash: string }[]) keep(row.code_hash);
      await t.http().delete(`${AUTH}/me`).set(client).set(bearer(fifth.body.access_token)).send({ password: resetPassword }).expect(200);
      for (const event of await eventsOf(database, userId)) typesSeen.add(event.type);
    }
    // Hashes the service could have written in place of a secret, and each secret as JSON would escape it.
    for (const value of [...secrets]) secrets.add(sha256(value)).add(JSON.stringify(value).slice(1, -1));

    // A long secret must not appear even in part: every 12-character piece of it is looked for.
    const pieces = [...secrets].filter((secret) => secret.length >= 6).flatMap((secret) =>
      secret.length < 16 ? [secret] : Array.from({ length: secret.length - 11 }, (_, i) => secret.slice(i, i + 12)),
    );
    const rows = (await sql(database, 'SELECT * FROM auth_events')) as EventRow[];
    expect(rows.length).toBeGreaterThan(50);
    const leaks = rows.flatMap((row) => {
      const text = Object.values(row).map(String).join('\n');
      return pieces.filter((piece) => text.includes(piece)).map((piece) => `event ${row.id} (${row.type}) holds ${JSON.stringify(piece)}`);
    });
    expect(leaks).toEqual([]);
    // The OIDC events need an identity provider: test/oidc-linking.e2e-spec.ts checks what they hold.
    const elsewhere = ['user_locked', 'user_unlocked', 'role_granted', 'role_revoked', 'oidc_signin', 'identity_linked', 'identity_unlinked'];
    const userFlows = AUTH_EVENT_TYPES.filter((type) => !elsewhere.includes(type));
    expect([...typesSeen].sort()).toEqual([...userFlows].sort());
  });

  it('answers GET /events with the caller’s own history, newest first, a page at a time', async () => {
    const { account, token, userId } = await signUp(t.http);
    const stranger = await signUp(t.http);
    for (let i = 0; i < 3; i++) await t.http().post(`${AUTH}/signin`).send({ ...account, password: `wrong password ${i}` }).expect(401);
    const first = await t.http().get(`${AUTH}/events?limit=2`).set(bearer(token)).expect(200);
    expect(first.body.items).toHaveLength(2);
    expect(first.body.next_cursor).toEqual(expect.any(String));
    const second = await t.http().get(`${AUTH}/events?limit=2&cursor=${first.body.next_cursor}`).set(bearer(token)).expect(200);
    expect(second.body).toMatchObject({ next_cursor: null });
    const all = [...first.body.items, ...second.body.items];
    expect(all.map((e: { type: string }) => e.type)).toEqual(['signin_failed', 'signin_failed', 'signin_failed', 'signup']);
    expect(all.every((e: { user_id: number }) => e.user_id === userId)).toBe(true);
    expect(all.map((e: { id: number }) => e.id)).toEqual([...all.map((e: { id: number }) => e.id)].sort((a, b) => b - a));
    expect(all.some((e: { user_id: number }) => e.user_id === stranger.userId)).toBe(false);
    expectProblem(await t.http().get(`${AUTH}/events?limit=0`).set(bearer(token)), 422);
    expectProblem(await t.http().get(`${AUTH}/events?cursor=abc`).set(bearer(token)), 422);
  });

  it('prunes events older than AUDIT_RETENTION_DAYS in the hourly housekeeping', async () => {
    const old = await signUp(t.http);
    advance(31 * DAY_MS);
    const recent = await signUp(t.http);
    expect(await eventsOf(database, old.userId)).not.toEqual([]);
    await t.app.get(Housekeeping).run();
    expect(await eventsOf(database, old.userId)).toEqual([]);
    expect((await eventsOf(database, recent.userId)).map((e) => e.type)).toEqual(['signup']);
  });
});
