import { Inject, Injectable } from '@nestjs/common';
import { ValidationFailedException } from '../common/exceptions';
import { AUTH_CONFIG, AuthConfig } from '../options/auth-config';
import { AuthRoutes } from './auth-routes';
import type { TokenResponse } from './dto/responses.dto';

export const REFRESH_COOKIE_NAME = 'refresh_token';

/** The part of Express's and Fastify's responses used here: both have `header(name, value)`. */
interface HeaderWriter {
  header(name: string, value: string): unknown;
}

interface CookieCarrier {
  headers: Record<string, string | string[] | undefined>;
}

/**
 * Cookie mode (`refreshTokenCookie`): the refresh token travels in an HttpOnly cookie, out of reach of
 * the page's scripts, instead of the response body. Written and read here by hand, so it works the same
 * on Express and Fastify without a cookie plugin on either.
 */
@Injectable()
export class RefreshTokenCookie {
  constructor(
    @Inject(AUTH_CONFIG) private readonly config: AuthConfig,
    private readonly routes: AuthRoutes,
  ) {}

  /** In cookie mode, moves the refresh token from the body into the cookie; otherwise leaves the body as is. */
  deliver(response: HeaderWriter, body: TokenResponse): TokenResponse {
    if (!this.config.refreshTokenCookie || body.refresh_token === undefined) return body;
    response.header('Set-Cookie', this.cookie(body.refresh_token, this.config.refreshTokenTtlSeconds));
    const { refresh_token: _moved, ...rest } = body;
    return rest;
  }

  /** Tells the browser to drop the cookie (sign-out). */
  clear(response: HeaderWriter): void {
    if (this.config.refreshTokenCookie) response.header('Set-Cookie', this.cookie('', 0));
  }

  /**
   * The presented refresh token: from the cookie in cookie mode (the body as a fallback; undefined when
   * neither has one), else from the body, where it is required.
   */
  read(request: CookieCarrier, fromBody: string | null | undefined): string | undefined {
    if (this.config.refreshTokenCookie) return cookieValue(request.headers.cookie, REFRESH_COOKIE_NAME) ?? fromBody ?? undefined;
    // `@IsOptional()` (for cookie mode) lets null through validation.
    if (fromBody === undefined || fromBody === null) {
      throw new ValidationFailedException([{ field: 'refresh_token', message: 'refresh_token must be a string' }]);
    }
    return fromBody;
  }

  /** The cookie goes only to the module's own routes: the refresh route needs it, nothing else does. */
  private cookie(value: string, maxAgeSeconds: number): string {
    const path = this.routes.basePath();
    return `${REFRESH_COOKIE_NAME}=${value}; Max-Age=${maxAgeSeconds}; Path=${path}; HttpOnly; Secure; SameSite=Strict`;
  }
}

/** The value of cookie `name` in a Cookie header, or undefined. Refresh tokens are base64url: no decoding needed. */
export function cookieValue(header: string | string[] | undefined, name: string): string | undefined {
  if (typeof header !== 'string') return undefined;
  for (const pair of header.split(';')) {
    const separator = pair.indexOf('=');
    if (separator > 0 && pair.slice(0, separator).trim() === name) {
      const value = pair.slice(separator + 1).trim();
      return value === '' ? undefined : value;
    }
  }
  return undefined;
}
