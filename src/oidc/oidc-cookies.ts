import { Injectable } from '@nestjs/common';
import { AuthRoutes } from '../auth/auth-routes';
import { cookieValue } from '../auth/refresh-token-cookie';

/** One name for the browser binding, whether it sits on the callback's path or the exchange's. */
export const OIDC_BINDING_COOKIE = 'oidc_binding';

/**
 * The cookie that ties an authorization request, and the one-time code it ends with, to the browser that
 * started it: a state or code carried to another browser finds no matching cookie there. `SameSite=Lax`,
 * because the provider's redirect back is a cross-site navigation, which a `Strict` cookie does not follow;
 * scoped to the one path that reads it.
 */
@Injectable()
export class OidcCookies {
  constructor(private readonly routes: AuthRoutes) {}

  callbackPath(provider: string): string {
    return `${this.base()}/oidc/${provider}/callback`;
  }

  exchangePath(): string {
    return `${this.base()}/oidc/exchange`;
  }

  forCallback(provider: string, value: string, maxAgeSeconds: number): string {
    return cookie(value, maxAgeSeconds, this.callbackPath(provider));
  }

  forExchange(value: string, maxAgeSeconds: number): string {
    return cookie(value, maxAgeSeconds, this.exchangePath());
  }

  read(header: string | string[] | undefined): string | undefined {
    return cookieValue(header, OIDC_BINDING_COOKIE);
  }

  private base(): string {
    const base = this.routes.basePath();
    return base === '/' ? '' : base;
  }
}

function cookie(value: string, maxAgeSeconds: number, path: string): string {
  return `${OIDC_BINDING_COOKIE}=${value}; Max-Age=${maxAgeSeconds}; Path=${path}; HttpOnly; Secure; SameSite=Lax`;
}
