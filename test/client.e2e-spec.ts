import type { AddressInfo } from 'node:net';
import { AuthErrors } from '../src/common/auth.errors';
import { base32Decode, hotp, stepAt } from '../src/mfa/totp';
import { AuthClient, AuthError, AuthClientOptions, createAuthClient, User } from '../client/index';
import { newAccount, NewAccount, waitUntil } from './support/fixtures';
import { tokenFromMail } from './support/smtp';
import { useTestApp } from './support/test-app';

/**
 * The client (client/index.ts, shipped as `nest-auth-service/client`) in Node, against the standalone
 * app listening on a loopback port: bearer mode, camelCase results, typed problem details, refresh
 * before expiry and on a 401, single-flight within the process. The browser side (tabs, Web Locks,
 * cookie mode, reload) is test/browser-client.e2e-spec.ts.
 */
describe('the client in Node (bearer mode)', () => {
  // Access tokens live a minute; a spent refresh token presented again is a reuse at once (no grace), so
  // a second refresh with one token would revoke the session and log refresh_token_reused.
  const { t, smtp } = useTestApp('sqlite', {
    adapter: 'fastify',
    env: { ACCESS_TOKEN_EXPIRE_MINUTES: '1', REFRESH_TOKEN_REUSE_GRACE_SECONDS: '0' },
  });
  let origin: string;
  /** Every request the clients sent: `METHOD /path`. */
  let sent: string[];
  const clients: AuthClient[] = [];

  const recordingFetch = (request: Request) => {
    sent.push(`${request.method} ${new URL(request.url).pathname}`);
    return fetch(request);
  };
  const refreshes = () => sent.filter((line) => line === 'POST /api/v1/auth/refresh').length;
  const reuseAlarms = () => t.logs.lines.filter((line) => line.includes('refresh_token_reused')).length;

  function client(options: Partial<AuthClientOptions> = {}): AuthClient {
    const made = createAuthClient({ baseUrl: origin, mode: 'bearer', fetch: recordingFetch, ...options });
    clients.push(made);
    return made;
  }

  async function signedUp(options: Partial<AuthClientOptions> = {}): Promise<{ c: AuthClient; account: NewAccount; user: User }> {
    const c = client(options);
    const account = newAccount({ full_name: 'Ada Lovelace' });
    const { user } = await c.signUp(account);
    return { c, account, user };
  }

  /** Runs `action` with the app issuing access tokens that expired a minute ago (its clock set back two minutes). */
  async function withExpiredTokens<T>(action: () => Promise<T>): Promise<T> {
    t.advanceClock(-120_000);
    try {
      return await action();
    } finally {
      t.advanceClock(120_000);
    }
  }

  async function rejection(promise: Promise<unknown>): Promise<AuthError> {
    const error = await promise.then(
      () => undefined,
      (reason: unknown) => reason,
    );
    expect(error).toBeInstanceOf(AuthError);
    return error as AuthError;
  }

  beforeAll(async () => {
    await t.app.listen(0, '127.0.0.1');
    origin = `http://127.0.0.1:${(t.app.getHttpServer().address() as AddressInfo).port}`;
  });

  beforeEach(() => {
    sent = [];
  });

  afterAll(() => {
    for (const made of clients) made.close();
  });

  it('signs up and answers in camelCase; the tokens stay in memory, the user is reported to listeners', async () => {
    const c = client();
    const seen: (User | null)[] = [];
    c.onChange((user) => seen.push(user));
    const account = newAccount({ full_name: 'Ada Lovelace' });
    const { user } = await c.signUp(account);
    expect(user).toEqual({
      id: expect.any(Number),
      email: account.email,
      username: account.username,
      fullName: 'Ada Lovelace',
      isActive: true,
      isVerified: false,
      mfaEnabled: false,
      roles: [],
      hasPassword: true,
      createdAt: expect.any(String),
    });
    expect(seen).toEqual([user]);
    expect(c.user()).toEqual(user);
    expect(c.accessToken()).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    expect(await c.me()).toEqual(user);
    const sessions = await c.sessions();
    expect(sessions).toEqual([
      { id: expect.any(String), createdAt: expect.any(String), lastUsedAt: expect.any(String), userAgent: 'node', ip: '127.0.0.1', current: true },
    ]);
    expect(sent).toEqual(['POST /api/v1/auth/signup', 'GET /api/v1/auth/me', 'GET /api/v1/auth/sessions']);
  });

  it('updateMe changes the profile with the wire body and tells listeners', async () => {
    const c = client();
    const { user } = await c.signUp(newAccount({ full_name: 'Ada' }));
    const seen: (User | null)[] = [];
    c.onChange((changed) => seen.push(changed));
    const updated = await c.updateMe({ full_name: 'Ada Lovelace' });
    expect(updated).toEqual({ ...user, fullName: 'Ada Lovelace' });
    expect(c.user()).toEqual(updated);
    expect(seen).toEqual([updated]);
    expect((await c.updateMe({ full_name: null })).fullName).toBeNull();
    expect(sent.filter((line) => line.startsWith('PATCH'))).toEqual(['PATCH /api/v1/auth/me', 'PATCH /api/v1/auth/me']);
  });

  it('takes a bare origin as /api/v1/auth, and a base with its own prefix as it is', async () => {
    const { c, account } = await signedUp({ baseUrl: `${origin}/` });
    const other = client({ baseUrl: `${origin}/api/v1/auth/` });
    expect(await other.signIn({ email: account.email, password: account.password })).toEqual({ user: expect.objectContaining({ email: account.email }) });
    expect((await c.sessions()).length).toBe(2);
    const wrongBase = client({ baseUrl: `${origin}/api/v2/auth` });
    expect((await rejection(wrongBase.signIn({ email: account.email, password: account.password }))).status).toBe(404);
  });

  it('rejects with AuthError: status, detail, field errors of a 422 and the whole problem body', async () => {
    const c = client();
    const invalid = await rejection(c.signUp({ email: 'not-an-email', username: 'x', password: 'short' }));
    expect(invalid).toBeInstanceOf(Error);
    expect(invalid.name).toBe('AuthError');
    expect(invalid.status).toBe(422);
    expect(invalid.errors).toEqual(
      expect.arrayContaining([
        { field: 'email', message: expect.any(String) },
        { field: 'username', message: expect.any(String) },
        { field: 'password', message: expect.any(String) },
      ]),
    );
    expect(invalid.problem).toMatchObject({ type: 'about:blank', title: expect.any(String), status: 422, detail: invalid.detail });

    const { account } = await signedUp();
    const wrong = await rejection(c.signIn({ email: account.email, password: 'wrong password!' }));
    expect({ status: wrong.status, detail: wrong.detail, errors: wrong.errors }).toEqual({ status: 401, detail: AuthErrors.INVALID_CREDENTIALS, errors: [] });
    expect(wrong.problem).toEqual({ type: 'about:blank', title: 'Unauthorized', status: 401, detail: AuthErrors.INVALID_CREDENTIALS });
    expect(wrong.message).toBe(`401 ${AuthErrors.INVALID_CREDENTIALS}`);
    expect(c.accessToken()).toBeNull();

    const taken = await rejection(c.signUp({ ...newAccount(), email: account.email }));
    expect([taken.status, taken.detail]).toEqual([400, AuthErrors.EMAIL_ALREADY_REGISTERED]);
  });

  it('makes up a problem for an error body that is none (a proxy page), keeping the status', async () => {
    const c = client({ fetch: async () => new Response('<html>Bad gateway</html>', { status: 502, statusText: 'Bad Gateway', headers: { 'Content-Type': 'text/html' } }) });
    const error = await rejection(c.forgotPassword({ email: 'ada@example.com' }));
    expect(error.problem).toEqual({ type: 'about:blank', title: 'Bad Gateway', status: 502, detail: 'Bad Gateway' });
  });

  it('refreshes on a 401 and retries once: the caller sees only the answer', async () => {
    const c = client();
    const account = newAccount();
    await withExpiredTokens(() => c.signUp(account));
    const expired = c.accessToken();
    sent = [];
    expect((await c.me()).email).toBe(account.email);
    expect(sent).toEqual(['GET /api/v1/auth/me', 'POST /api/v1/auth/refresh', 'GET /api/v1/auth/me']);
    expect(c.accessToken()).not.toBe(expired);

    // The app's own routes through client.fetch: the bearer added, the same refresh on a 401.
    await withExpiredTokens(() => c.refresh());
    sent = [];
    const response = await c.fetch(`${origin}/api/v1/auth/sessions`, { headers: { Accept: 'application/json' } });
    expect(response.status).toBe(200);
    expect(await response.json()).toHaveLength(1);
    expect(sent).toEqual(['GET /api/v1/auth/sessions', 'POST /api/v1/auth/refresh', 'GET /api/v1/auth/sessions']);
    expect(reuseAlarms()).toBe(0);
  });

  it('sends a request body again on the retry after a refresh', async () => {
    const c = client();
    const account = newAccount();
    await withExpiredTokens(() => c.signUp(account));
    const response = await c.fetch(`${origin}/api/v1/auth/change-password`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ old_password: account.password, new_password: 'a brand new passphrase' }),
    });
    expect(response.status).toBe(200);
    expect(sent.filter((line) => line.endsWith('/change-password'))).toHaveLength(2);
  });

  it('refreshes once for many callers at once (single-flight): no spent token is presented again', async () => {
    const c = client();
    await withExpiredTokens(() => c.signUp(newAccount()));
    sent = [];
    const results = await Promise.all([c.me(), c.sessions(), c.me(), c.refresh(), c.refresh(), c.fetch(`${origin}/api/v1/auth/me`)]);
    expect(results).toHaveLength(6);
    expect(refreshes()).toBe(1);
    expect(reuseAlarms()).toBe(0);
    expect(await c.sessions()).toHaveLength(1);
  });

  it('refreshes refreshMarginSeconds before the access token expires, by itself', async () => {
    const { c } = await signedUp({ refreshMarginSeconds: 58 }); // a 60 s token: refreshed after 2 s
    const first = c.accessToken();
    sent = [];
    await waitUntil('the timer refreshed', () => refreshes() === 1, 5_000);
    await waitUntil('the new token is in use', () => c.accessToken() !== first);
    expect(c.accessToken()).toEqual(expect.any(String));
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(refreshes()).toBe(1);
  });

  it('with TOTP on: signIn answers mfaRequired with the token, signInMfa finishes; confirmTotp refreshes to aal2', async () => {
    const { c, account } = await signedUp();
    const setup = await c.setUpTotp();
    expect(setup).toEqual({ secret: expect.any(String), otpauthUrl: expect.stringMatching(/^otpauth:/), qrCode: expect.stringMatching(/^data:image\/svg/) });
    const before = c.accessToken();
    const { recoveryCodes } = await c.confirmTotp({ code: hotp(base32Decode(setup.secret), stepAt(Date.now())) });
    expect(recoveryCodes).toHaveLength(10);
    expect(c.accessToken()).not.toBe(before);
    const claims = JSON.parse(Buffer.from(c.accessToken()!.split('.')[1], 'base64url').toString('utf8'));
    expect(claims.aal).toBe('aal2');
    expect(c.user()!.mfaEnabled).toBe(true);
    await c.signOut();

    const result = await c.signIn({ email: account.email, password: account.password });
    expect(result).toEqual({ mfaRequired: true, mfaToken: expect.any(String) });
    expect(c.accessToken()).toBeNull();
    if (!('mfaRequired' in result)) throw new Error('unreachable');
    const wrong = await rejection(c.signInMfa({ mfa_token: result.mfaToken, code: '000000' }));
    expect([wrong.status, wrong.detail]).toEqual([401, AuthErrors.INVALID_MFA_CODE]);
    const { user } = await c.signInMfa({ mfa_token: result.mfaToken, code: recoveryCodes[0] });
    expect(user.email).toBe(account.email);
    expect((await c.newRecoveryCodes()).recoveryCodes).toHaveLength(10);
  });

  it('signs out: the token is gone, listeners hear null, the server refuses the old session', async () => {
    const { c } = await signedUp();
    const seen: (User | null)[] = [];
    c.onChange((user) => seen.push(user));
    const token = c.accessToken()!;
    await c.signOut();
    expect(seen).toEqual([null]);
    expect(c.accessToken()).toBeNull();
    expect(c.user()).toBeNull();
    const after = await rejection(c.me());
    expect([after.status, after.detail]).toEqual([401, AuthErrors.NOT_AUTHENTICATED]);
    expect((await fetch(`${origin}/api/v1/auth/me`, { headers: { Authorization: `Bearer ${token}` } })).status).toBe(401);
    expect((await rejection(c.refresh())).detail).toBe('Not signed in');
    // Signing out again is not an error.
    await c.signOut();
  });

  it('signOutAll ends the other devices too; a session ended elsewhere signs this client out on its next refresh', async () => {
    const { c, account } = await signedUp();
    const laptop = client();
    await laptop.signIn({ email: account.email, password: account.password });
    const phone = client();
    await phone.signIn({ email: account.email, password: account.password });
    const phoneSession = (await phone.sessions()).find((session) => session.current)!;
    expect(await c.endSession(phoneSession.id)).toEqual({ message: expect.any(String) });
    const seen: (User | null)[] = [];
    phone.onChange((user) => seen.push(user));
    expect((await rejection(phone.refresh())).detail).toBe(AuthErrors.INVALID_REFRESH_TOKEN);
    expect(seen).toEqual([null]);
    expect(phone.accessToken()).toBeNull();

    await c.signOutAll();
    expect(c.accessToken()).toBeNull();
    expect((await rejection(laptop.me())).status).toBe(401);
    expect(laptop.accessToken()).toBeNull(); // the 401 led to a refresh, which found the session gone
  });

  it('ending its own session through endSession signs the client out', async () => {
    const { c } = await signedUp();
    const [current] = await c.sessions();
    await c.endSession(current.id);
    expect(c.accessToken()).toBeNull();
  });

  it('changePassword: the server ends every session, this one included, and so does the client', async () => {
    const { c, account } = await signedUp();
    const wrong = await rejection(c.changePassword({ old_password: 'not the password', new_password: 'a new passphrase!' }));
    expect([wrong.status, wrong.detail]).toEqual([400, AuthErrors.INCORRECT_CURRENT_PASSWORD]);
    expect(c.accessToken()).not.toBeNull();
    expect(await c.changePassword({ old_password: account.password, new_password: 'a new passphrase!' })).toEqual({ message: 'Password changed successfully' });
    expect(c.accessToken()).toBeNull();
    expect(await c.signIn({ email: account.email, password: 'a new passphrase!' })).toEqual({ user: expect.objectContaining({ email: account.email }) });
  });

  it('changeEmail and confirmEmailChange: the address changes once the mailed link is followed, from any client', async () => {
    const { c, account, user } = await signedUp();
    const newEmail = newAccount().email;
    const wrong = await rejection(c.changeEmail({ new_email: newEmail, password: 'not the password' }));
    expect([wrong.status, wrong.detail]).toEqual([400, AuthErrors.INCORRECT_CURRENT_PASSWORD]);
    expect(await c.changeEmail({ new_email: newEmail, password: account.password })).toEqual({ message: 'Check your inbox to confirm the new address' });
    const link = await smtp.waitFor(newEmail, (m) => m.text.includes('/confirm-email?token='));
    // Opened in another browser: no session needed.
    expect(await client().confirmEmailChange({ token: tokenFromMail(link) })).toEqual({ message: 'Email changed successfully' });
    const bad = await rejection(client().confirmEmailChange({ token: tokenFromMail(link) }));
    expect([bad.status, bad.detail]).toEqual([400, 'Invalid or expired token']);
    const seen: (User | null)[] = [];
    c.onChange((changed) => seen.push(changed));
    expect(await c.me()).toEqual({ ...user, email: newEmail, isVerified: true });
    expect(seen).toEqual([{ ...user, email: newEmail, isVerified: true }]);
  });

  it('deleteAccount: a refusal keeps the session; the deletion signs the client out and the server refuses its tokens', async () => {
    const { c, account } = await signedUp();
    const seen: (User | null)[] = [];
    c.onChange((changed) => seen.push(changed));
    const token = c.accessToken()!;
    const wrong = await rejection(c.deleteAccount({ password: 'not the password' }));
    expect([wrong.status, wrong.detail]).toEqual([400, AuthErrors.INCORRECT_CURRENT_PASSWORD]);
    const missing = await rejection(c.deleteAccount());
    expect(missing.status).toBe(422);
    expect(c.accessToken()).toBe(token);
    expect(await c.deleteAccount({ password: account.password })).toEqual({ message: 'Account deleted' });
    expect(c.accessToken()).toBeNull();
    expect(seen).toEqual([null]);
    const res = await fetch(`${origin}/api/v1/auth/me`, { headers: { Authorization: `Bearer ${token}` } });
    expect(res.status).toBe(401);
    const signIn = await rejection(client().signIn({ email: account.email, password: account.password }));
    expect(signIn.status).toBe(401);
  });

  it('the public routes: forgot and reset password, verify email, resend verification', async () => {
    const { c, account } = await signedUp();
    expect(await c.forgotPassword({ email: account.email })).toEqual({ message: expect.any(String) });
    expect(await c.resendVerification({ email: account.email })).toEqual({ message: expect.any(String) });
    const badReset = await rejection(c.resetPassword({ token: 'not-a-token', new_password: 'a new passphrase!' }));
    expect([badReset.status, badReset.detail]).toEqual([400, AuthErrors.INVALID_RESET_TOKEN]);
    const badVerify = await rejection(c.verifyEmail({ token: 'not-a-token' }));
    expect([badVerify.status, badVerify.detail]).toEqual([400, AuthErrors.INVALID_VERIFICATION_TOKEN]);
  });

  it('restore() in Node, bearer mode, has nothing to restore from', async () => {
    expect(await client().restore()).toBeNull();
    const { c, user } = await signedUp();
    expect(await c.restore()).toEqual({ user });
  });

  it('refuses a mode it does not know, and a margin that is no number of seconds', () => {
    expect(() => createAuthClient({ baseUrl: origin, mode: 'session' as 'bearer' })).toThrow(TypeError);
    expect(() => createAuthClient({ baseUrl: origin, mode: 'bearer', refreshMarginSeconds: -1 })).toThrow(TypeError);
    expect(() => createAuthClient({ baseUrl: origin, mode: 'bearer', refreshMarginSeconds: Number.NaN })).toThrow(TypeError);
  });

  it('raised no reuse alarm in the whole suite', () => {
    expect(reuseAlarms()).toBe(0);
  });
});
