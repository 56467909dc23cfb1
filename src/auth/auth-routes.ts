import { Inject, Injectable } from '@nestjs/common';
import { ApplicationConfig } from '@nestjs/core';
import { AUTH_ROUTE_PREFIX } from '../options/route-prefix';

/**
 * Where the auth routes are served: the host's global prefix (read when first needed, since a host sets
 * it after creating the app) followed by the module's route prefix.
 */
@Injectable()
export class AuthRoutes {
  private path: string | undefined;

  constructor(
    private readonly application: ApplicationConfig,
    @Inject(AUTH_ROUTE_PREFIX) private readonly routePrefix: string,
  ) {}

  /** `/api/v1/auth` by default: a leading slash, no trailing one (`/` when both prefixes are empty). */
  basePath(): string {
    this.path ??= '/' + [this.application.getGlobalPrefix(), this.routePrefix].map((part) => part.replace(/^\/+|\/+$/g, '')).filter(Boolean).join('/');
    return this.path;
  }

  /** Whether a request path (query string allowed) is one of the auth routes. */
  covers(url: string): boolean {
    const base = this.basePath();
    const path = url.split('?', 1)[0];
    return base === '/' || path === base || path.startsWith(`${base}/`);
  }
}
