import { BadRequestException, Inject, Injectable, Logger } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { timingSafeEqual } from 'node:crypto';
import * as client from 'openid-client';
import { IsNull, LessThan, Repository } from 'typeorm';
import type { RequestContext } from '../auth/decorators';
import { AuthErrors } from '../common/auth.errors';
import { newOpaqueToken, sha256Hex } from '../common/opaque-tokens';
import { TransactionRunner } from '../common/transaction-runner';
import { AUTH_CONFIG, AuthConfig } from '../options/auth-config';
import type { SessionClient } from '../sessions/sessions.service';
import { OidcAccounts, ProviderAccount } from './oidc-accounts';
import { OidcCookies } from './oidc-cookies';
import { OidcExchangeCode, OidcState } from './oidc.entities';
import { OidcProviders } from './oidc-providers';

const STATE_TTL_SECONDS = 600;
export const EXCHANGE_CODE_TTL_SECONDS = 60;
/** Spent and expired states stay this long, so that a late or repeated callback is still told `invalid_state`. */
const STATE_KEPT_MS = 24 * 3600 * 1000;

export interface AuthorizeRequest {
  provider: string;
  redirectUri: string;
  prompt?: string;
  loginHint?: string;
  /** Set when a signed-in user links an identity: the callback then links instead of signing in. */
  linkUserId?: number;
}

/** Where to send the browser, and the binding cookie to set on the way. */
export interface BrowserRedirect {
  location: string;
  cookies: string[];
}

/** The callback's refusals that the browser is sent back with (`?error=`). */
type CallbackError = 'invalid_state' | 'provider_error' | 'account_exists' | 'email_not_verified' | 'account_inactive' | 'access_denied';

/**
 * The authorization code flow with PKCE (S256), `state` and `nonce` (OpenID Connect Core 3.1; RFC 9700).
 * Every piece of a flow in flight lives in the database, so the callback can reach any instance. The
 * callback's query (code, state) is never logged.
 */
@Injectable()
export class OidcFlow {
  private readonly logger = new Logger('OidcFlow');

  constructor(
    private readonly providers: OidcProviders,
    private readonly accounts: OidcAccounts,
    private readonly cookies: OidcCookies,
    private readonly transactions: TransactionRunner,
    @InjectRepository(OidcState) private readonly states: Repository<OidcState>,
    @InjectRepository(OidcExchangeCode) private readonly codes: Repository<OidcExchangeCode>,
    @Inject(AUTH_CONFIG) private readonly config: AuthConfig,
  ) {}

  /** The provider's authorization URL for a new state, and the cookie binding it to this browser. */
  async authorize(request: AuthorizeRequest): Promise<BrowserRedirect> {
    const settings = this.providers.configured(request.provider);
    // Checked before anything is sent to the provider: an open redirect after sign-in leaks the code.
    if (!this.providers.settings!.redirectUrls.has(request.redirectUri)) throw new BadRequestException(AuthErrors.REDIRECT_URL_NOT_ALLOWED);
    const provider = this.providers.get(request.provider);
    const state = newOpaqueToken();
    const binding = newOpaqueToken();
    const nonce = client.randomNonce();
    const codeVerifier = client.randomPKCECodeVerifier();
    const now = this.config.clock();
    await this.transactions.run(async (manager) => {
      const states = manager.getRepository(OidcState);
      await states.delete({ expiresAt: LessThan(new Date(now.getTime() - STATE_KEPT_MS)) });
      await states.insert({
        stateHash: sha256Hex(state),
        browserHash: sha256Hex(binding),
        provider: request.provider,
        redirectUri: request.redirectUri,
        nonce,
        codeVerifier,
        linkUserId: request.linkUserId ?? null,
        expiresAt: new Date(now.getTime() + STATE_TTL_SECONDS * 1000),
        usedAt: null,
      });
    });
    const parameters: Record<string, string> = {
      redirect_uri: this.callbackUrl(request.provider),
      scope: settings.scopes.join(' '),
      state,
      nonce,
      code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
    };
    if (request.prompt) parameters.prompt = request.prompt;
    if (request.loginHint) parameters.login_hint = request.loginHint;
    const location = client.buildAuthorizationUrl(provider.client, parameters).href;
    return { location, cookies: [this.cookies.forCallback(request.provider, binding, STATE_TTL_SECONDS)] };
  }

  /**
   * The provider sent the browser back. `rawQuery` is the query string as received (openid-client checks
   * every parameter of it, `iss` included). Throws 400 when there is no state this service issued for the
   * provider, since there is then no page of the client app to send the browser to.
   */
  async callback(providerName: string, rawQuery: string, cookieHeader: string | string[] | undefined, ctx: RequestContext): Promise<BrowserRedirect> {
    this.providers.configured(providerName);
    const query = new URLSearchParams(rawQuery);
    const state = query.get('state');
    const row = state ? await this.states.findOneBy({ stateHash: sha256Hex(state), provider: providerName }) : null;
    if (!state || !row) throw new BadRequestException(AuthErrors.INVALID_OIDC_STATE);
    const clearCallbackCookie = this.cookies.forCallback(providerName, '', 0);
    const back = (outcome: CallbackError | { code: string; binding: string } | { linked: string }): BrowserRedirect => {
      const location = new URL(row.redirectUri);
      const cookies = [clearCallbackCookie];
      if (typeof outcome === 'string') location.searchParams.set('error', outcome);
      else if ('linked' in outcome) location.searchParams.set('linked', outcome.linked);
      else {
        location.searchParams.set('code', outcome.code);
        cookies.push(this.cookies.forExchange(outcome.binding, EXCHANGE_CODE_TTL_SECONDS));
      }
      return { location: location.href, cookies };
    };
    const binding = this.cookies.read(cookieHeader);
    const now = this.config.clock();
    if (!binding || !sameHash(sha256Hex(binding), row.browserHash) || row.expiresAt <= now || row.usedAt !== null) {
      this.audit('oidc_invalid_state', row.linkUserId, ctx, providerName);
      return back('invalid_state');
    }
    // The first callback with this state wins; a replay of the same redirect finds it spent.
    const claim = await this.states.update({ id: row.id, usedAt: IsNull() }, { usedAt: now });
    if (claim.affected !== 1) return back('invalid_state');
    if (query.has('error')) {
      this.audit(`oidc_provider_refused`, row.linkUserId, ctx, providerName);
      return back(query.get('error') === 'access_denied' ? 'access_denied' : 'provider_error');
    }
    const account = await this.exchangeAtProvider(providerName, row, query, ctx);
    if (!account) return back('provider_error');
    const client = clientOf(ctx);
    if (row.linkUserId !== null) {
      const linked = await this.accounts.link(row.linkUserId, account, client);
      this.audit(linked.outcome === 'linked' ? 'identity_linked' : 'identity_link_refused', row.linkUserId, ctx, providerName);
      return back(linked.outcome === 'linked' ? { linked: providerName } : 'account_exists');
    }
    const decision = await this.accounts.signIn(account, client);
    if (decision.outcome !== 'user') {
      this.audit(`oidc_signin_refused_${decision.outcome}`, null, ctx, providerName);
      return back(decision.outcome);
    }
    const code = newOpaqueToken();
    // Spent and expired codes go as new ones come: none is of use a minute after it was issued.
    await this.codes.delete({ expiresAt: LessThan(new Date(now.getTime() - STATE_KEPT_MS)) });
    await this.codes.insert({
      tokenHash: sha256Hex(code),
      browserHash: row.browserHash,
      userId: decision.user.id,
      expiresAt: new Date(now.getTime() + EXCHANGE_CODE_TTL_SECONDS * 1000),
      usedAt: null,
    });
    this.audit('oidc_code_issued', decision.user.id, ctx, providerName);
    return back({ code, binding });
  }

  callbackUrl(provider: string): string {
    return this.providers.settings!.publicUrl + this.cookies.callbackPath(provider);
  }

  /** The code for tokens at the provider, and the ID token's claims once every check passed; null when any failed. */
  private async exchangeAtProvider(providerName: string, row: OidcState, query: URLSearchParams, ctx: RequestContext): Promise<ProviderAccount | null> {
    let provider;
    try {
      provider = this.providers.get(providerName);
    } catch {
      return null;
    }
    try {
      const currentUrl = new URL(this.callbackUrl(providerName));
      currentUrl.search = query.toString();
      const tokens = await client.authorizationCodeGrant(provider.client, currentUrl, {
        pkceCodeVerifier: row.codeVerifier,
        expectedState: query.get('state')!,
        expectedNonce: row.nonce,
        idTokenExpected: true,
      });
      const claims = tokens.claims();
      // OIDC Core bounds `sub` to 255 ASCII characters; the columns hold that much. U+0000 is refused by PostgreSQL.
      if (!claims || !fits(claims.sub, 255) || !fits(claims.iss, 255)) {
        this.logger.warn(`event=oidc_provider_error provider=${providerName} request_id=${ctx.requestId} reason="iss or sub missing or too long"`);
        return null;
      }
      return {
        provider: providerName,
        issuer: claims.iss,
        subject: claims.sub,
        email: fits(claims.email, 254) ? claims.email : null,
        emailVerified: claims.email_verified === true,
        preferredUsername: fits(claims.preferred_username, 200) ? claims.preferred_username : null,
        name: fits(claims.name, 500) ? claims.name : null,
      };
    } catch (error) {
      // The library's reason (a claim check, a signature, a refused grant); never the query or a token.
      const reason = failureReason(error);
      this.logger.warn(`event=oidc_provider_error provider=${providerName} request_id=${ctx.requestId} reason=${JSON.stringify(reason.slice(0, 400))}`);
      return null;
    }
  }

  private audit(event: string, userId: number | null, ctx: RequestContext, provider?: string): void {
    const via = provider ? ` provider=${provider}` : '';
    this.logger.log(`event=${event} user_id=${userId ?? '-'}${via} request_id=${ctx.requestId} ip=${ctx.ip}`);
  }
}

/**
 * The library's error and its causes: code, message and the name of the claim that failed. Only those
 * strings: the cause objects also hold the token, its signature and response bodies.
 */
function failureReason(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current && typeof current === 'object'; depth++) {
    const { code, message, claim } = current as { code?: unknown; message?: unknown; claim?: unknown };
    const piece = [typeof code === 'string' ? code : '', typeof message === 'string' ? message : '', typeof claim === 'string' ? `claim "${claim}"` : '']
      .filter(Boolean)
      .join(' ');
    if (piece) parts.push(piece);
    current = (current as { cause?: unknown }).cause;
  }
  return parts.join(' <- ') || 'unknown error';
}

/** A string claim the tables can hold. */
function fits(value: unknown, maxLength: number): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= maxLength && !value.includes('\u0000');
}

export function sameHash(a: string, b: string): boolean {
  return a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));
}

function clientOf(ctx: RequestContext): SessionClient {
  return { userAgent: ctx.userAgent, ip: ctx.ip };
}
