import { CanActivate, ExecutionContext, Injectable, UnauthorizedException } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { AuthGuard } from '@nestjs/passport';
import { AuthErrors } from '../common/auth.errors';
import { IS_PUBLIC_KEY } from './decorators';
import { AUTH_JWT_STRATEGY } from './jwt.strategy';

/** Passport's guard for the module's strategy, answering with the contract's messages. */
class BearerTokenGuard extends AuthGuard(AUTH_JWT_STRATEGY) {
  override handleRequest<TUser>(error: unknown, user: TUser | false, info: unknown): TUser {
    if (error) throw error;
    if (!user) {
      const missing = info instanceof Error && info.message === 'No auth token';
      throw new UnauthorizedException(missing ? AuthErrors.NOT_AUTHENTICATED : AuthErrors.INVALID_ACCESS_TOKEN);
    }
    return user;
  }
}

/**
 * Requires a valid access token and puts its user on the request (read it with `@CurrentUser()`).
 * Use it per route, or app-wide as `APP_GUARD` together with `@Public()` on open routes.
 *
 * It wraps Passport's guard rather than extending it, so the published declarations do not need the
 * host to install `@types/passport` (and, through it, `@types/express`).
 */
@Injectable()
export class JwtAuthGuard implements CanActivate {
  private readonly bearer = new BearerTokenGuard();

  constructor(private readonly reflector: Reflector) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const isPublic = this.reflector.getAllAndOverride<boolean>(IS_PUBLIC_KEY, [context.getHandler(), context.getClass()]);
    return isPublic || ((await this.bearer.canActivate(context)) as boolean);
  }
}
