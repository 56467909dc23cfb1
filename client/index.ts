/**
 * A typed client of the auth service for browsers and Node: `import { createAuthClient } from
 * 'nest-auth-service/client'`. One ES module with no runtime dependency; its types come from the OpenAPI
 * document the server serves at /docs-json (client/api-types.ts, generated). Contract: SPEC.md, "The
 * browser client"; guide: README.md, "Browser client".
 *
 * Tokens live in this object's memory only. In a browser every tab of an origin shares one session: a
 * refresh runs under a Web Lock, so at most one tab refreshes at a time, and a BroadcastChannel hands the
 * new tokens, a sign-in and a sign-out to the other tabs. In Node (no Web Locks) a refresh is single-flight
 * within the client.
 */
import type { components, operations, paths } from './api-types.js';

// ------------------------------------------------------------------------------------------------- types

type Schemas = components['schemas'];

/** `full_name` -> `fullName`, at type level. */
type CamelCase<S extends string> = S extends `${infer Head}_${infer Tail}` ? `${Head}${Capitalize<CamelCase<Tail>>}` : S;

/** A wire shape with camelCase keys, all the way down (what every method resolves with). */
export type Camelize<T> = T extends readonly (infer Item)[]
  ? Camelize<Item>[]
  : T extends object
    ? { [K in keyof T as K extends string ? CamelCase<K> : K]: Camelize<T[K]> }
    : T;

/** The JSON request body of an operation of the document, snake_case as on the wire. */
type RequestBody<Op extends keyof operations> = NonNullable<operations[Op]['requestBody']> extends {
  content: { 'application/json': infer Body };
}
  ? Body
  : never;

/** The 200 (or 201) JSON body of an operation of the document. */
type Ok<Op extends keyof operations> = operations[Op]['responses'] extends infer R
  ? R extends { 200: { content: { 'application/json': infer Body } } }
    ? Body
    : R extends { 201: { content: { 'application/json': infer Body } } }
      ? Body
      : never
  : never;

/** `/sessions/{id}` -> `/sessions/${string}`. */
type Filled<P extends string> = P extends `${infer Head}{${string}}${infer Tail}` ? `${Head}${string}${Filled<Tail>}` : P;

/** The paths of the document below the auth prefix: every route this file calls is checked against it. */
type AuthPath = keyof paths extends infer P ? (P extends `/api/v1/auth${infer Rest}` ? Filled<Rest> : never) : never;

export type User = Camelize<Schemas['UserResponse']>;
export type Session = Camelize<Schemas['SessionResponse']>;
export type Message = Camelize<Schemas['SuccessResponse']>;
export type TotpSetup = Camelize<Schemas['TotpSetupResponse']>;
export type RecoveryCodes = Camelize<Schemas['RecoveryCodesResponse']>;
export type Identity = Camelize<Schemas['IdentityResponse']>;
/** An RFC 9457 problem details body exactly as the server sent it (snake_case: `request_id`, `mfa_token`). */
export type Problem = Schemas['ProblemDetails'];
export type FieldError = Schemas['FieldErrorResponse'];

export type SignUpBody = RequestBody<'signUp'>;
export type SignInBody = RequestBody<'signIn'>;
export type SignInMfaBody = RequestBody<'signInMfa'>;
export type ForgotPasswordBody = RequestBody<'forgotPassword'>;
export type ResetPasswordBody = RequestBody<'resetPassword'>;
export type ChangePasswordBody = RequestBody<'changePassword'>;
export type UpdateMeBody = RequestBody<'updateMe'>;
export type ChangeEmailBody = RequestBody<'changeEmail'>;
export type ConfirmEmailChangeBody = RequestBody<'confirmEmailChange'>;
export type DeleteAccountBody = RequestBody<'deleteMe'>;
export type VerifyEmailBody = RequestBody<'verifyEmail'>;
export type ResendVerificationBody = RequestBody<'resendVerification'>;
export type MfaCodeBody = RequestBody<'confirmTotp'>;

type TokenResponse = Ok<'signIn'>;

export interface SignedIn {
  user: User;
}

/** What `signIn` resolves with: signed in, or a second factor is due (`signInMfa` with a code). */
export type SignInResult = SignedIn | { mfaRequired: true; mfaToken: string };

export type AuthMode = 'cookie' | 'bearer';

export interface AuthClientOptions {
  /**
   * The auth base: origin plus prefixes, e.g. `https://api.example.com/api/v1/auth`; a bare origin means
   * `/api/v1/auth`. In a browser it may be relative to the page (`/api/v1/auth`).
   */
  baseUrl: string;
  /** Must match the server: `cookie` when it runs with REFRESH_TOKEN_COOKIE=true, else `bearer`. */
  mode: AuthMode;
  /** How long before the access token expires it is refreshed (default 60). */
  refreshMarginSeconds?: number;
  /** The fetch to use (default: the global one). */
  fetch?: (input: Request) => Promise<Response>;
  /**
   * Share the session with the other tabs of the origin (Web Locks and BroadcastChannel). Default: true
   * in a browser page, false elsewhere (in Node two clients are two sessions).
   */
  crossTab?: boolean;
}

export interface AuthClient {
  signUp(body: SignUpBody): Promise<SignedIn>;
  signIn(body: SignInBody): Promise<SignInResult>;
  signInMfa(body: SignInMfaBody): Promise<SignedIn>;
  /** New tokens now (a timer does this `refreshMarginSeconds` before expiry, and `fetch` on a 401). */
  refresh(): Promise<SignedIn>;
  /** Ends this session, in every tab. Resolves once this client is signed out, even if the server was. */
  signOut(): Promise<void>;
  /** Ends every session of the user (other devices too), and signs every tab out. */
  signOutAll(): Promise<void>;
  me(): Promise<User>;
  /** Changes the username or full name (`full_name: null` clears it); `onChange` listeners get the new user. */
  updateMe(body: UpdateMeBody): Promise<User>;
  /**
   * Asks to move the account to `new_email` (with `password` when the account has one); the address
   * changes once the link mailed there is followed (`confirmEmailChange`). The same answer whether or not
   * the address is free.
   */
  changeEmail(body: ChangeEmailBody): Promise<Message>;
  /** Follows the link of `changeEmail` (no session needed); the server ends every other session of the account. */
  confirmEmailChange(body: ConfirmEmailChangeBody): Promise<Message>;
  /** Deletes the account (with `password` when it has one) and signs every tab out. */
  deleteAccount(body?: DeleteAccountBody): Promise<Message>;
  sessions(): Promise<Session[]>;
  /** Ends one of the user's sessions (`id` from `sessions()`); ending this one signs every tab out. */
  endSession(id: string): Promise<Message>;
  forgotPassword(body: ForgotPasswordBody): Promise<Message>;
  resetPassword(body: ResetPasswordBody): Promise<Message>;
  /** Changes the password; the server ends every session, this one included, so every tab is signed out. */
  changePassword(body: ChangePasswordBody): Promise<Message>;
  verifyEmail(body: VerifyEmailBody): Promise<Message>;
  resendVerification(body: ResendVerificationBody): Promise<Message>;
  /** Starts TOTP: a secret, its otpauth URL and a QR code. */
  setUpTotp(): Promise<TotpSetup>;
  /** Turns TOTP on with a first code, then refreshes, so this session's token is `aal2`. */
  confirmTotp(body: MfaCodeBody): Promise<RecoveryCodes>;
  disableTotp(body: MfaCodeBody): Promise<Message>;
  newRecoveryCodes(): Promise<RecoveryCodes>;
  /**
   * Where to send the browser (`location.assign(url)`) to sign in with provider `name`; it comes back to
   * `redirectUri` (one of the server's OIDC_REDIRECT_URLS) with `?code=` for `completeOidc`, or `?error=`.
   */
  oidcSignInUrl(name: string, redirectUri: string, options?: { prompt?: string; loginHint?: string }): string;
  /** Exchanges the `code` the browser came back with; answers as `signIn` (a second factor may be due). */
  completeOidc(code: string): Promise<SignInResult>;
  /** The provider's URL to send the browser to for linking provider `name` (needs a sign-in in the last 5 minutes); back at `redirectUri` with `?linked=`. */
  oidcLinkUrl(name: string, redirectUri: string, options?: { prompt?: string; loginHint?: string }): Promise<string>;
  /** The provider accounts linked to this account. */
  identities(): Promise<Identity[]>;
  /** Unlinks one (`id` from `identities()`); refused for the account's last way to sign in. */
  unlinkIdentity(id: number): Promise<Message>;
  /** The current access token, or null when signed out or expired. */
  accessToken(): string | null;
  /** The signed-in user as last seen, or null. */
  user(): User | null;
  /** `fetch` with the bearer: refreshes first when the token is due, and once more (then retries) on a 401. */
  fetch(input: Request | string | URL, init?: RequestInit): Promise<Response>;
  /** Called with the user or null on every sign-in and sign-out, in every tab; returns the unsubscribe. */
  onChange(listener: (user: User | null) => void): () => void;
  /**
   * After a reload: cookie mode signs in from the refresh cookie; in both modes another open tab's
   * session is taken over. Resolves `{ user }`, or null when there is no session to restore.
   */
  restore(): Promise<SignedIn | null>;
  /** Stops the refresh timer and leaves the tab channel. */
  close(): void;
}

// ------------------------------------------------------------------------------------------------ errors

/** A failed call: the server's problem details (RFC 9457), or one made up for a body that was none. */
export class AuthError extends Error {
  override readonly name = 'AuthError';
  readonly status: number;
  readonly detail: string;
  /** The field errors of a 422; empty otherwise. */
  readonly errors: FieldError[];
  /** The whole problem body as received. */
  readonly problem: Problem;

  constructor(problem: Problem) {
    super(`${problem.status} ${problem.detail}`);
    this.status = problem.status;
    this.detail = problem.detail;
    this.errors = problem.errors ?? [];
    this.problem = problem;
  }
}

const NOT_SIGNED_IN: Problem = { type: 'about:blank', title: 'Unauthorized', status: 401, detail: 'Not signed in' };

async function problemOf(response: Response): Promise<Problem> {
  const text = await response.text().catch(() => '');
  try {
    const body = JSON.parse(text) as Partial<Problem>;
    if (body && typeof body.status === 'number' && typeof body.detail === 'string') return body as Problem;
  } catch {
    // not JSON: a proxy's page, say
  }
  const title = response.statusText || `HTTP ${response.status}`;
  return { type: 'about:blank', title, status: response.status, detail: title };
}

// ------------------------------------------------------------------------------------------------- state

/** One session's tokens, as one tab holds them and hands them to the others. */
interface Tokens {
  accessToken: string;
  /** Bearer mode only: in cookie mode the refresh token is in an HttpOnly cookie, out of reach. */
  refreshToken?: string;
  /** Epoch milliseconds: when the server issued these (on this machine's clock), and when the access token expires. */
  obtainedAt: number;
  expiresAt: number;
  user: Schemas['UserResponse'];
}

type TabMessage =
  | { type: 'tokens'; tokens: Tokens }
  | { type: 'signed-out'; at: number }
  /** A new tab asks for the session. */
  | { type: 'hello' }
  /** A tab let go of the refresh lock (after sending what its refresh came to). */
  | { type: 'released' };

/** What the client needs of the Web Locks API and BroadcastChannel (declared here, so Node's types do too). */
interface LockManagerLike {
  request<T>(name: string, options: { ifAvailable?: boolean }, callback: (lock: unknown) => Promise<T>): Promise<T>;
}
interface ChannelLike {
  postMessage(message: TabMessage): void;
  close(): void;
  onmessage: ((event: { data: TabMessage }) => void) | null;
}
interface BrowserGlobals {
  navigator?: { locks?: LockManagerLike };
  BroadcastChannel?: new (name: string) => ChannelLike;
  location?: { href: string };
  document?: {
    visibilityState?: string;
    addEventListener(type: string, listener: () => void): void;
    removeEventListener(type: string, listener: () => void): void;
  };
}

const DEFAULT_PREFIX = '/api/v1/auth';
/** How long `restore()` in bearer mode waits for another tab to hand over its session. */
const HELLO_WAIT_MS = 150;
/** How long a tab that waited for the refresh lock waits for the holder's result to arrive (it was sent first). */
const HANDOFF_WAIT_MS = 1_000;
/** A refresh that failed for another reason than the session (network, 5xx, 429) is retried after this. */
const RETRY_MS = 5_000;

function camelize(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(camelize);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value).map(([key, item]) => [key.replace(/_([a-z0-9])/g, (_match, c: string) => c.toUpperCase()), camelize(item)]),
  );
}

function authBase(baseUrl: string, page: string | undefined): string {
  const url = new URL(baseUrl, page);
  const path = url.pathname.replace(/\/+$/, '');
  return `${url.origin}${path === '' ? DEFAULT_PREFIX : path}`;
}

/** When to refresh tokens that live `lifetime` ms: `margin` before expiry, or halfway when it lives no longer. */
function refreshDelay(lifetime: number, margin: number): number {
  return lifetime > margin ? Math.max(lifetime - margin, 1_000) : lifetime / 2;
}

/** Adds a waiter to `waiters` (which the caller runs on its event) that resolves then, or after `timeoutMs`. */
function waitOn(waiters: Set<() => void>, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      waiters.delete(done);
      resolve();
    };
    const timer = setTimeout(done, timeoutMs);
    waiters.add(done);
  });
}

// ------------------------------------------------------------------------------------------------ client

export function createAuthClient(options: AuthClientOptions): AuthClient {
  return new Client(options);
}

class Client implements AuthClient {
  private readonly base: string;
  private readonly mode: AuthMode;
  private readonly marginMs: number;
  private readonly send: (request: Request) => Promise<Response>;
  private readonly globals = globalThis as unknown as BrowserGlobals;
  private readonly locks: LockManagerLike | undefined;
  private readonly channel: ChannelLike | undefined;
  private readonly listeners = new Set<(user: User | null) => void>();
  private tokens: Tokens | null = null;
  /** The last sign-out seen (here or in another tab): tokens obtained before it are dead. */
  private signedOutAt = 0;
  private refreshing: Promise<Tokens> | undefined;
  /** When another tab last let go of the refresh lock, and who waits to hear of the next time. */
  private releasedAt = 0;
  private readonly releaseWaiters = new Set<() => void>();
  private readonly tokenWaiters = new Set<() => void>();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly onVisible = () => {
    if (this.globals.document?.visibilityState === 'visible' && this.due()) this.refreshInBackground();
  };

  constructor(options: AuthClientOptions) {
    if (options.mode !== 'cookie' && options.mode !== 'bearer') throw new TypeError("mode must be 'cookie' or 'bearer'");
    this.base = authBase(options.baseUrl, this.globals.location?.href);
    this.mode = options.mode;
    const margin = options.refreshMarginSeconds ?? 60;
    if (!Number.isFinite(margin) || margin < 0) throw new TypeError('refreshMarginSeconds must be a number of seconds, 0 or more');
    this.marginMs = margin * 1000;
    const fetchImpl = options.fetch;
    this.send = fetchImpl ? (request) => fetchImpl(request) : (request) => globalThis.fetch(request);
    const crossTab = options.crossTab ?? this.globals.document !== undefined;
    if (crossTab) {
      this.locks = this.globals.navigator?.locks;
      const Channel = this.globals.BroadcastChannel;
      if (Channel) {
        this.channel = new Channel(`nest-auth-service ${this.base}`);
        this.channel.onmessage = (event) => this.receive(event.data);
      }
      this.globals.document?.addEventListener('visibilitychange', this.onVisible);
    }
  }

  // ---------------------------------------------------------------------------- sign-in and sign-out

  async signUp(body: SignUpBody): Promise<SignedIn> {
    return this.signedIn(await this.call<TokenResponse>('POST', '/signup', { body, auth: false }));
  }

  async signIn(body: SignInBody): Promise<SignInResult> {
    try {
      return this.signedIn(await this.call<TokenResponse>('POST', '/signin', { body, auth: false }));
    } catch (error) {
      if (error instanceof AuthError && error.status === 403 && typeof error.problem.mfa_token === 'string') {
        return { mfaRequired: true, mfaToken: error.problem.mfa_token };
      }
      throw error;
    }
  }

  oidcSignInUrl(name: string, redirectUri: string, options: { prompt?: string; loginHint?: string } = {}): string {
    const query = new URLSearchParams({ redirect_uri: redirectUri });
    if (options.prompt) query.set('prompt', options.prompt);
    if (options.loginHint) query.set('login_hint', options.loginHint);
    return `${this.base}/oidc/${encodeURIComponent(name)}/authorize?${query}`;
  }

  async completeOidc(code: string): Promise<SignInResult> {
    try {
      // The code is bound to this browser's oidc_binding cookie: sent in either mode.
      return this.signedIn(await this.call<TokenResponse>('POST', '/oidc/exchange', { body: { code }, auth: false, cookies: true }));
    } catch (error) {
      if (error instanceof AuthError && error.status === 403 && typeof error.problem.mfa_token === 'string') {
        return { mfaRequired: true, mfaToken: error.problem.mfa_token };
      }
      throw error;
    }
  }

  async oidcLinkUrl(name: string, redirectUri: string, options: { prompt?: string; loginHint?: string } = {}): Promise<string> {
    const path = `/oidc/${encodeURIComponent(name)}/link` as const;
    const body = { redirect_uri: redirectUri, prompt: options.prompt, login_hint: options.loginHint };
    const started = await this.call<Ok<'oidcLink'>>('POST', path, { body, cookies: true });
    return started.authorize_url;
  }

  async identities(): Promise<Identity[]> {
    return camelize(await this.call<Ok<'oidcListIdentities'>>('GET', '/identities')) as Identity[];
  }

  unlinkIdentity(id: number): Promise<Message> {
    return this.call<Message>('DELETE', `/identities/${encodeURIComponent(String(id))}`);
  }

  async signInMfa(body: SignInMfaBody): Promise<SignedIn> {
    return this.signedIn(await this.call<TokenResponse>('POST', '/signin/mfa', { body, auth: false }));
  }

  async refresh(): Promise<SignedIn> {
    const tokens = await this.refreshTokens();
    return { user: camelize(tokens.user) as User };
  }

  async restore(): Promise<SignedIn | null> {
    if (this.tokens && Date.now() < this.tokens.expiresAt) return { user: this.userOf(this.tokens) };
    // Another open tab answers with its session, if it has one.
    this.channel?.postMessage({ type: 'hello' });
    if (this.mode === 'bearer') {
      if (this.channel && !this.tokens) await this.nextTokens(HELLO_WAIT_MS);
      return this.tokens ? { user: this.userOf(this.tokens) } : null;
    }
    try {
      return await this.refresh();
    } catch (error) {
      if (error instanceof AuthError && error.status === 401) return null;
      throw error;
    }
  }

  async signOut(): Promise<void> {
    await this.ending(() => this.call('POST', '/signout'));
  }

  async signOutAll(): Promise<void> {
    await this.ending(() => this.call('POST', '/signout-all'));
  }

  // ---------------------------------------------------------------------------------- the user's routes

  async me(): Promise<User> {
    return this.keepUser(await this.call<Ok<'me'>>('GET', '/me'));
  }

  async updateMe(body: UpdateMeBody): Promise<User> {
    return this.keepUser(await this.call<Ok<'updateMe'>>('PATCH', '/me', { body }));
  }

  changeEmail(body: ChangeEmailBody): Promise<Message> {
    return this.call<Message>('POST', '/change-email', { body });
  }

  confirmEmailChange(body: ConfirmEmailChangeBody): Promise<Message> {
    return this.call<Message>('POST', '/confirm-email-change', { body, auth: false });
  }

  async deleteAccount(body: DeleteAccountBody = {}): Promise<Message> {
    // A refusal (wrong password, 429) leaves the session as it was; only a deletion signs out.
    const result = await this.call<Message>('DELETE', '/me', { body });
    this.signedOut(); // the account and every session of it are gone, in every tab
    return result;
  }

  /** The user as the server just answered it, kept with the session (listeners hear of a change). */
  private keepUser(user: Ok<'me'>): User {
    if (this.tokens && this.tokens.user.id === user.id) {
      const changed = JSON.stringify(this.tokens.user) !== JSON.stringify(user);
      this.tokens = { ...this.tokens, user };
      if (changed) this.emit();
    }
    return camelize(user) as User;
  }

  async sessions(): Promise<Session[]> {
    return camelize(await this.call<Ok<'listSessions'>>('GET', '/sessions')) as Session[];
  }

  async endSession(id: string): Promise<Message> {
    const current = (await this.sessions()).some((session) => session.id === id && session.current);
    const path = `/sessions/${encodeURIComponent(id)}` as const;
    if (!current) return this.call<Message>('DELETE', path);
    let result: Message | undefined;
    await this.ending(async () => (result = await this.call<Message>('DELETE', path)));
    return result!;
  }

  forgotPassword(body: ForgotPasswordBody): Promise<Message> {
    return this.call<Message>('POST', '/forgot-password', { body, auth: false });
  }

  resetPassword(body: ResetPasswordBody): Promise<Message> {
    return this.call<Message>('POST', '/reset-password', { body, auth: false });
  }

  async changePassword(body: ChangePasswordBody): Promise<Message> {
    const result = await this.call<Message>('POST', '/change-password', { body });
    this.signedOut(); // the server ended every session, this one included
    return result;
  }

  verifyEmail(body: VerifyEmailBody): Promise<Message> {
    return this.call<Message>('POST', '/verify-email', { body, auth: false });
  }

  resendVerification(body: ResendVerificationBody): Promise<Message> {
    return this.call<Message>('POST', '/resend-verification', { body, auth: false });
  }

  async setUpTotp(): Promise<TotpSetup> {
    return camelize(await this.call<Ok<'setUpTotp'>>('POST', '/mfa/totp/setup')) as TotpSetup;
  }

  async confirmTotp(body: MfaCodeBody): Promise<RecoveryCodes> {
    const codes = camelize(await this.call<Ok<'confirmTotp'>>('POST', '/mfa/totp/confirm', { body })) as RecoveryCodes;
    await this.refreshTokens(); // the session is aal2 from its next refresh
    return codes;
  }

  disableTotp(body: MfaCodeBody): Promise<Message> {
    return this.call<Message>('POST', '/mfa/totp/disable', { body });
  }

  async newRecoveryCodes(): Promise<RecoveryCodes> {
    return camelize(await this.call<Ok<'newRecoveryCodes'>>('POST', '/mfa/recovery-codes')) as RecoveryCodes;
  }

  // ------------------------------------------------------------------------------------- the app's side

  accessToken(): string | null {
    return this.tokens && Date.now() < this.tokens.expiresAt ? this.tokens.accessToken : null;
  }

  user(): User | null {
    return this.tokens ? this.userOf(this.tokens) : null;
  }

  fetch(input: Request | string | URL, init?: RequestInit): Promise<Response> {
    return this.authorized(new Request(input, init));
  }

  onChange(listener: (user: User | null) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  close(): void {
    clearTimeout(this.timer);
    this.channel?.close();
    this.globals.document?.removeEventListener('visibilitychange', this.onVisible);
  }

  // --------------------------------------------------------------------------------------- internals

  /** A route of the auth API: JSON in (snake_case), the wire's JSON out, or an AuthError. */
  private async call<T>(method: string, path: AuthPath, options: { body?: unknown; auth?: boolean; cookies?: boolean } = {}): Promise<T> {
    const headers: Record<string, string> = { Accept: 'application/json, application/problem+json' };
    if (options.body !== undefined) headers['Content-Type'] = 'application/json';
    const request = new Request(`${this.base}${path}`, {
      method,
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      // Cookie mode: the refresh cookie must be stored and sent, also from a sibling origin (CORS).
      credentials: this.mode === 'cookie' || options.cookies ? 'include' : 'same-origin',
    });
    const response = await (options.auth === false ? this.send(request) : this.authorized(request));
    if (!response.ok) throw new AuthError(await problemOf(response));
    return (await response.json()) as T;
  }

  /** Sends `request` with the bearer: refreshed first when due; on a 401, refreshed (or another tab's) and sent once more. */
  private async authorized(request: Request): Promise<Response> {
    if (this.due()) await this.refreshTokens().catch(() => undefined); // a failure shows as the 401 below
    const used = this.accessToken();
    const response = await this.send(this.withBearer(request.clone(), used));
    if (response.status !== 401) return response;
    if (!this.tokens || this.tokens.accessToken === used) {
      if (used === null && this.mode === 'bearer') return response; // nothing to refresh with
      try {
        await this.refreshTokens();
      } catch {
        return response;
      }
    }
    return this.send(this.withBearer(request, this.accessToken()));
  }

  private withBearer(request: Request, token: string | null): Request {
    if (token) request.headers.set('Authorization', `Bearer ${token}`);
    return request;
  }

  /** Past the planned refresh time (a background tab's timer may have been held back). */
  private due(): boolean {
    return this.tokens !== null && Date.now() >= this.tokens.obtainedAt + refreshDelay(this.tokens.expiresAt - this.tokens.obtainedAt, this.marginMs);
  }

  /** One refresh at a time in this client, and under the Web Lock one at a time across the origin's tabs. */
  private refreshTokens(): Promise<Tokens> {
    this.refreshing ??= this.lockedRefresh().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  private async lockedRefresh(): Promise<Tokens> {
    const asked = Date.now();
    return this.underLock(async (waited) => {
      // This tab waited while another one held the lock: its result (tokens, or a sign-out) is on the way,
      // sent before it let go; take it rather than present a refresh token that tab may just have spent.
      if (waited && this.releasedAt < asked) await this.nextRelease(HANDOFF_WAIT_MS);
      if (this.tokens && this.tokens.obtainedAt >= asked) return this.tokens;
      if (this.signedOutAt >= asked) throw new AuthError(NOT_SIGNED_IN);
      if (this.mode === 'bearer' && !this.tokens?.refreshToken) throw new AuthError(NOT_SIGNED_IN);
      const used = this.tokens;
      try {
        const body = this.mode === 'cookie' ? {} : { refresh_token: used!.refreshToken };
        return this.adopt(await this.call<TokenResponse>('POST', '/refresh', { body, auth: false }), true);
      } catch (error) {
        // The session is over (revoked, expired, the account locked): signed out, in every tab.
        if (error instanceof AuthError && (error.status === 401 || error.status === 403)) {
          if (used && this.tokens === used) this.signedOut();
        } else if (this.tokens) {
          this.schedule(RETRY_MS); // the network, a 5xx or a 429: the session may well be fine
        }
        throw error;
      }
    });
  }

  /**
   * Runs `run` holding the origin-wide refresh lock (Web Locks), telling it whether another tab held the
   * lock first; tells the other tabs when it lets go. Without Web Locks (Node) it just runs.
   */
  private underLock<T>(run: (waited: boolean) => Promise<T>): Promise<T> {
    const locks = this.locks;
    if (!locks) return run(false);
    const name = `nest-auth-service refresh ${this.base}`;
    const hold = async (waited: boolean): Promise<T> => {
      try {
        return await run(waited);
      } finally {
        // After the tokens or sign-out this run sent, so a tab that gets the lock next has them first.
        this.channel?.postMessage({ type: 'released' });
      }
    };
    return locks.request(name, { ifAvailable: true }, (lock) => (lock ? hold(false) : locks.request(name, {}, () => hold(true))));
  }

  /** Resolves on the next 'released' from another tab, or after `timeoutMs`. */
  private nextRelease(timeoutMs: number): Promise<void> {
    return waitOn(this.releaseWaiters, timeoutMs);
  }

  /** Resolves when this client next takes tokens (its own or another tab's), or after `timeoutMs`. */
  private nextTokens(timeoutMs: number): Promise<void> {
    return waitOn(this.tokenWaiters, timeoutMs);
  }

  private refreshInBackground(): void {
    this.refreshTokens().catch(() => undefined);
  }

  private signedIn(response: TokenResponse): SignedIn {
    return { user: this.userOf(this.adopt(response, true)) };
  }

  /** Takes tokens the server just issued; tells the other tabs. */
  private adopt(response: TokenResponse, broadcast: boolean): Tokens {
    const obtainedAt = Math.max(Date.now(), (this.tokens?.obtainedAt ?? 0) + 1, this.signedOutAt + 1);
    const tokens: Tokens = {
      accessToken: response.access_token,
      refreshToken: response.refresh_token,
      obtainedAt,
      expiresAt: obtainedAt + response.expires_in * 1000,
      user: response.user,
    };
    this.take(tokens);
    if (broadcast) this.channel?.postMessage({ type: 'tokens', tokens });
    return tokens;
  }

  private take(tokens: Tokens): void {
    const before = this.tokens ? JSON.stringify(this.tokens.user) : null;
    this.tokens = tokens;
    this.schedule(refreshDelay(tokens.expiresAt - tokens.obtainedAt, this.marginMs) - (Date.now() - tokens.obtainedAt));
    if (JSON.stringify(tokens.user) !== before) this.emit();
    for (const waiter of [...this.tokenWaiters]) waiter();
  }

  private schedule(delayMs: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.refreshInBackground(), Math.max(delayMs, 0));
    // Node: a pending refresh must not keep the process alive.
    (this.timer as { unref?: () => void }).unref?.();
  }

  /** Runs a call that ends this session (sign-out); whatever it answers, this client and every tab are signed out. */
  private async ending(call: () => Promise<unknown>): Promise<void> {
    try {
      await call();
    } catch (error) {
      // Already over on the server (401): the outcome wanted.
      if (!(error instanceof AuthError && error.status === 401)) {
        this.signedOut();
        throw error;
      }
    }
    this.signedOut();
  }

  private signedOut(at = Date.now(), broadcast = true): void {
    this.signedOutAt = Math.max(this.signedOutAt, at);
    clearTimeout(this.timer);
    const had = this.tokens !== null;
    this.tokens = null;
    if (broadcast) this.channel?.postMessage({ type: 'signed-out', at: this.signedOutAt });
    if (had) this.emit();
  }

  private receive(message: TabMessage): void {
    switch (message.type) {
      case 'tokens':
        // Only newer than what this tab holds, and not from before a sign-out it has seen.
        if (message.tokens.obtainedAt > (this.tokens?.obtainedAt ?? 0) && message.tokens.obtainedAt > this.signedOutAt) {
          this.take(message.tokens);
        }
        break;
      case 'signed-out':
        // A sign-in here after that sign-out (the message was late) stays.
        if (!this.tokens || this.tokens.obtainedAt <= message.at) this.signedOut(message.at, false);
        else this.signedOutAt = Math.max(this.signedOutAt, message.at);
        break;
      case 'hello':
        if (this.tokens) this.channel?.postMessage({ type: 'tokens', tokens: this.tokens });
        break;
      case 'released':
        this.releasedAt = Date.now();
        for (const waiter of [...this.releaseWaiters]) waiter();
        break;
    }
  }

  private userOf(tokens: Tokens): User {
    return camelize(tokens.user) as User;
  }

  private emit(): void {
    const user = this.tokens ? this.userOf(this.tokens) : null;
    for (const listener of this.listeners) {
      try {
        listener(user);
      } catch (error) {
        setTimeout(() => {
          throw error;
        });
      }
    }
  }
}
