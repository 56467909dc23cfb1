import type { AddressInfo } from 'node:net';
import { base32Decode, hotp, stepAt } from '../src/mfa/totp';
import { AuthClient, AuthError, createAuthClient } from '../client/index';
import { APP_REDIRECT, Browser, callbackUrl, oidcEnv, TestIdp } from './support/oidc';
import { createTestDatabase, TestDatabase } from './support/databases';
import { startTestApp, TestApp } from './support/test-app';

/**
 * The client's OIDC calls in Node against the standalone app on a loopback port and oidc-provider as the
 * identity provider: the sign-in URL, the browser's trip (a cookie jar standing in for it), completeOidc
 * (also with TOTP), identities and unlinkIdentity.
 */
describe('the client with an OIDC provider (Node, bearer mode)', () => {
  let database: TestDatabase;
  let idp: TestIdp;
  let t: TestApp;
  let origin: string;
  const clients: AuthClient[] = [];

  beforeAll(async () => {
    idp = await TestIdp.start([callbackUrl('test')]);
    database = await createTestDatabase('sqlite');
    t = await startTestApp({ adapter: 'fastify', databaseUrl: database.url, env: oidcEnv(idp.issuer) });
    await t.app.listen(0, '127.0.0.1');
    origin = `http://127.0.0.1:${(t.app.getHttpServer().address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    for (const made of clients) made.close();
    await t?.close();
    await database?.drop();
    await idp?.stop();
  });

  /** A client whose requests carry the browser's cookies for the app, as a page's fetch would. */
  function clientOf(browser: Browser): AuthClient {
    const made = createAuthClient({
      baseUrl: origin,
      mode: 'bearer',
      fetch: async (request) => {
        const cookie = browser.cookieFor(new URL(request.url).pathname);
        const headers = new Headers(request.headers);
        if (cookie) headers.set('cookie', cookie);
        const response = await fetch(new Request(request, { headers }));
        browser.takeAppCookies(response.headers.getSetCookie());
        return response;
      },
    });
    clients.push(made);
    return made;
  }

  /** The browser's trip: the sign-in URL, the provider, the callback; answers the page it lands on. */
  async function visit(browser: Browser, url: string): Promise<URL> {
    const start = await fetch(url, { redirect: 'manual' });
    expect(start.status).toBe(302);
    browser.takeAppCookies(start.headers.getSetCookie());
    return back(browser, start.headers.get('location')!);
  }

  /** From the provider's authorization URL back to the page of the client app. */
  async function back(browser: Browser, providerUrl: string): Promise<URL> {
    const callback = await browser.throughIdp(providerUrl, idp.issuer);
    const local = new URL(`${callback.pathname}${callback.search}`, origin);
    const landed = await fetch(local, { redirect: 'manual', headers: { cookie: browser.cookieFor(local.pathname) } });
    expect(landed.status).toBe(302);
    browser.takeAppCookies(landed.headers.getSetCookie());
    return new URL(landed.headers.get('location')!);
  }

  it('builds the sign-in URL, completes with the code, lists and unlinks identities', async () => {
    await idp.addAccount({ id: 'client-sub', email: 'client@idp.test', email_verified: true, name: 'Client User' });
    const browser = new Browser();
    const c = clientOf(browser);
    const url = c.oidcSignInUrl('test', APP_REDIRECT, { loginHint: 'client-sub', prompt: 'login' });
    expect(url).toBe(`${origin}/api/v1/auth/oidc/test/authorize?redirect_uri=${encodeURIComponent(APP_REDIRECT)}&prompt=login&login_hint=client-sub`);
    const landed = await visit(browser, url);
    const result = await c.completeOidc(landed.searchParams.get('code')!);
    expect(result).toEqual({ user: expect.objectContaining({ email: 'client@idp.test', fullName: 'Client User', hasPassword: false }) });
    expect(c.accessToken()).toEqual(expect.any(String));

    const identities = await c.identities();
    expect(identities).toEqual([{ id: expect.any(Number), provider: 'test', email: 'client@idp.test', createdAt: expect.any(String) }]);
    const refused = await c.unlinkIdentity(identities[0].id).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(AuthError);
    expect((refused as AuthError).detail).toBe('Cannot remove the last sign-in method');

    await idp.addAccount({ id: 'client-second', email: 'second@idp.test', email_verified: true });
    const linkUrl = await c.oidcLinkUrl('test', APP_REDIRECT, { loginHint: 'client-second' });
    // Another account at the provider: a browser not signed in there yet, with this one's cookies for the app.
    const switched = new Browser();
    switched.appCookies.push(...browser.appCookies);
    const linked = await back(switched, linkUrl);
    expect(linked.searchParams.get('linked')).toBe('test');
    expect(await c.unlinkIdentity(identities[0].id)).toEqual({ message: 'Identity unlinked' });
    expect((await c.identities()).map((identity) => identity.email)).toEqual(['second@idp.test']);

    // A spent code rejects as a problem.
    const again = await c.completeOidc(landed.searchParams.get('code')!).catch((error: unknown) => error);
    expect((again as AuthError).status).toBe(400);
  });

  it('answers mfaRequired for an account with TOTP, and signInMfa finishes at aal2 with amr oidc+otp', async () => {
    await idp.addAccount({ id: 'client-mfa', email: 'client-mfa@idp.test', email_verified: true });
    const browser = new Browser();
    const c = clientOf(browser);
    const first = await c.completeOidc((await visit(browser, c.oidcSignInUrl('test', APP_REDIRECT, { loginHint: 'client-mfa' }))).searchParams.get('code')!);
    expect('user' in first).toBe(true);
    const setup = await c.setUpTotp();
    const secret = base32Decode(setup.secret);
    await c.confirmTotp({ code: hotp(secret, stepAt(Date.now())) });
    t.advanceClock(30_000);

    const second = clientOf(browser);
    const result = await second.completeOidc((await visit(browser, second.oidcSignInUrl('test', APP_REDIRECT, { loginHint: 'client-mfa' }))).searchParams.get('code')!);
    expect(result).toEqual({ mfaRequired: true, mfaToken: expect.any(String) });
    const done = await second.signInMfa({ mfa_token: (result as { mfaToken: string }).mfaToken, code: hotp(secret, stepAt(Date.now() + 30_000)) });
    expect(done.user.mfaEnabled).toBe(true);
    const claims = JSON.parse(Buffer.from(second.accessToken()!.split('.')[1], 'base64url').toString('utf8'));
    expect(claims).toMatchObject({ aal: 'aal2', amr: ['oidc', 'otp'] });
  });
});
