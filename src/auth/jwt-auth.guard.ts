import { ExecutionContext, Injectable, UnauthorizedException } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { AuthGuard } from '@nestjs/passport';
import { AuthErrors } from '../common/auth.errors';
import { IS_PUBLIC_KEY } from './decorators';
import { AUTH_JWT_STRATEGY } from './jwt.strategy';

/**
 * Requires a valid access token and puts its user on the request (read it with `@CurrentUser()`).
 * Use it per route, or app-wide as `APP_GUARD` together with `@Public()` on open routes.
 */
@Injectable()
export class JwtAuthGuard extends AuthGuard(AUTH_JWT_STRATEGY) {
  constructor(private readonly reflector: Reflector) {
    super();
  }

  override canActivate(context: ExecutionContext) {
    const isPublic = this.reflector.getAllAndOverride<boolean>(IS_PUBLIC_KEY, [
      context.getHandler(),
      context.getClass(),
    ]);
    return isPublic ? true : super.canActivate(context);
  }

  override handleRequest<TUser>(error: unknown, user: TUser | false, info: unknown): TUser {
    if (error) throw error;
    if (!user) {
      const missing = info instanceof Error && info.message === 'No auth token';
      throw new UnauthorizedException(missing ? AuthErrors.NOT_AUTHENTICATED : AuthErrors.INVALID_ACCESS_TOKEN);
    }
    return user;
  }
}
