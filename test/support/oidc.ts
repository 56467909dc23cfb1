import { ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import type { TestApp } from './test-app';

export const PUBLIC_URL = 'http://localhost:3000';
export const APP_REDIRECT = 'https://app.example.test/auth/done';
export const CLIENT_ID = 'auth-service';
export const CLIENT_SECRET = 'a-client-secret-for-the-test-idp';

export function callbackUrl(provider: string, base = '/api/v1/auth'): string {
  return `${PUBLIC_URL}${base}/oidc/${provider}/callback`;
}

export interface ProviderAccountClaims {
  id: string;
  email?: string;
  email_verified?: boolean;
  name?: string;
  preferred_username?: string;
}

/** oidc-provider 9 in a child process on loopback: a real identity provider, with accounts the test adds. */
export class TestIdp {
  private constructor(
    private readonly child: ChildProcess,
    readonly issuer: string,
    readonly port: number,
  ) {}

  static async start(redirectUris: string[], port = 0): Promise<TestIdp> {
    const config = JSON.stringify({ port, clients: [{ client_id: CLIENT_ID, client_secret: CLIENT_SECRET, redirect_uris: redirectUris }] });
    const child = spawn(process.execPath, [join(__dirname, 'oidc-idp.mjs'), config], { stdio: ['ignore', 'pipe', 'pipe'] });
    let errors = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      errors += chunk.toString();
    });
    const listening = await new Promise<number>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        const match = /listening (\d+)/.exec(out);
        if (match) resolve(Number(match[1]));
      });
      child.on('exit', (code) => reject(new Error(`the test IdP exited (${code}): ${errors}`)));
    });
    return new TestIdp(child, `http://127.0.0.1:${listening}`, listening);
  }

  async addAccount(account: ProviderAccountClaims): Promise<void> {
    const response = await fetch(`${this.issuer}/__test/accounts`, { method: 'POST', body: JSON.stringify(account) });
    if (response.status !== 204) throw new Error(`adding an IdP account answered ${response.status}`);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill('SIGTERM');
    await exited;
  }
}

interface StoredCookie {
  name: string;
  value: string;
  path: string;
}

/** A browser: one cookie jar for the app (paths honoured) and one for the IdP. */
export class Browser {
  readonly appCookies: StoredCookie[] = [];
  private readonly idpCookies = new Map<string, string>();

  /** Keeps the app's Set-Cookie headers as a browser would (Max-Age=0 deletes). */
  takeAppCookies(setCookie: string[] | string | undefined): void {
    for (const header of typeof setCookie === 'string' ? [setCookie] : (setCookie ?? [])) {
      const [pair, ...attributes] = header.split(';').map((part) => part.trim());
      const [name, ...rest] = pair.split('=');
      const value = rest.join('=');
      const path = attributes.find((a) => a.toLowerCase().startsWith('path='))?.slice(5) ?? '/';
      const maxAge = attributes.find((a) => a.toLowerCase().startsWith('max-age='));
      const index = this.appCookies.findIndex((cookie) => cookie.name === name && cookie.path === path);
      if (index >= 0) this.appCookies.splice(index, 1);
      if (maxAge !== 'Max-Age=0' && value !== '') this.appCookies.push({ name, value, path });
    }
  }

  /** The Cookie header this browser sends to `path` of the app. */
  cookieFor(path: string): string {
    const bare = path.split('?', 1)[0];
    return this.appCookies
      .filter((cookie) => bare === cookie.path || bare.startsWith(`${cookie.path}/`))
      .map((cookie) => `${cookie.name}=${cookie.value}`)
      .join('; ');
  }

  /** Follows the IdP's redirects from `url` until one leads outside it; answers that URL. */
  async throughIdp(url: string, idpOrigin: string): Promise<URL> {
    let next = new URL(url);
    for (let hop = 0; hop < 10; hop++) {
      if (next.origin !== idpOrigin) return next;
      const cookie = [...this.idpCookies].map(([name, value]) => `${name}=${value}`).join('; ');
      const response = await fetch(next, { redirect: 'manual', headers: cookie ? { cookie } : {} });
      for (const header of response.headers.getSetCookie()) {
        const [pair] = header.split(';');
        const [name, ...rest] = pair.split('=');
        this.idpCookies.set(name.trim(), rest.join('='));
      }
      const location = response.headers.get('location');
      if (!location) throw new Error(`the IdP answered ${response.status} without a redirect: ${await response.text()}`);
      next = new URL(location, next);
    }
    throw new Error('too many redirects at the IdP');
  }
}

/** What the app's callback sent the browser to. */
export interface CallbackOutcome {
  location: URL;
  code: string | null;
  error: string | null;
  linked: string | null;
}

/** `/authorize` on the app, through the IdP as `loginHint`, and back: the callback URL, not yet visited. */
export async function authorizeThroughIdp(
  t: Pick<TestApp, 'http'>,
  browser: Browser,
  idp: { issuer: string },
  options: { provider?: string; loginHint: string; redirectUri?: string; prompt?: string },
): Promise<URL> {
  const provider = options.provider ?? 'test';
  const query = new URLSearchParams({ redirect_uri: options.redirectUri ?? APP_REDIRECT, login_hint: options.loginHint });
  if (options.prompt) query.set('prompt', options.prompt);
  const authorize = await t.http().get(`/api/v1/auth/oidc/${provider}/authorize?${query}`);
  if (authorize.status !== 302) throw new Error(`authorize answered ${authorize.status}: ${JSON.stringify(authorize.body)}`);
  browser.takeAppCookies(authorize.headers['set-cookie']);
  return browser.throughIdp(authorize.headers.location, new URL(idp.issuer).origin);
}

/** Visits the app's callback as `browser`, and reads where it sent the browser. */
export async function visitCallback(t: Pick<TestApp, 'http'>, browser: Browser, callback: URL): Promise<CallbackOutcome> {
  const path = `${callback.pathname}${callback.search}`;
  const response = await t.http().get(path).set('Cookie', browser.cookieFor(path));
  if (response.status !== 302) throw new Error(`callback answered ${response.status}: ${JSON.stringify(response.body)}`);
  browser.takeAppCookies(response.headers['set-cookie']);
  const location = new URL(response.headers.location);
  return { location, code: location.searchParams.get('code'), error: location.searchParams.get('error'), linked: location.searchParams.get('linked') };
}

/** `POST /oidc/exchange` as `browser`. */
export function exchange(t: Pick<TestApp, 'http'>, browser: Browser, code: string, base = '/api/v1/auth') {
  const path = `${base}/oidc/exchange`;
  return t.http().post(path).set('Cookie', browser.cookieFor(path)).send({ code });
}

/** The whole sign-in: authorize, IdP, callback. */
export async function signInThroughIdp(t: Pick<TestApp, 'http'>, browser: Browser, idp: { issuer: string }, loginHint: string): Promise<CallbackOutcome> {
  return visitCallback(t, browser, await authorizeThroughIdp(t, browser, idp, { loginHint }));
}

/** The standalone app's environment for provider `test` at `issuer`; `extra` adds or replaces variables. */
export function oidcEnv(issuer: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    OIDC_PROVIDERS: 'test',
    OIDC_TEST_ISSUER: issuer,
    OIDC_TEST_CLIENT_ID: CLIENT_ID,
    OIDC_TEST_CLIENT_SECRET: CLIENT_SECRET,
    PUBLIC_URL,
    OIDC_REDIRECT_URLS: `${APP_REDIRECT},https://app.example.test/settings`,
    ...extra,
  };
}
