import { CanActivate, ExecutionContext, ForbiddenException, Injectable } from '@nestjs/common';
import { AuthErrors } from '../common/auth.errors';
import { ModuleRef, Reflector } from '@nestjs/core';
import { BearerAuthenticator } from './bearer-authenticator';
import { AAL_KEY, AuthenticatedRequest, IS_PUBLIC_KEY, REQUIRED_AAL_KEY, REQUIRED_ROLES_KEY } from './decorators';

/**
 * Requires a valid access token and puts its user on the request (read it with `@CurrentUser()`).
 * Use it per route, or app-wide as `APP_GUARD` together with `@Public()` on open routes; `@RequireAal('aal2')`
 * asks a user with a second factor for a session that showed it, and `@Roles('admin')` for a role.
 *
 * It needs only what every Nest module can inject: the module's authenticator is looked up once, across
 * modules, so the guard works in any module of the host, whether or not it imports `AuthModule`.
 */
@Injectable()
export class JwtAuthGuard implements CanActivate {
  private authenticator?: BearerAuthenticator;

  constructor(
    private readonly reflector: Reflector,
    private readonly moduleRef: ModuleRef,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const isPublic = this.reflector.getAllAndOverride<boolean>(IS_PUBLIC_KEY, [context.getHandler(), context.getClass()]);
    if (isPublic) return true;
    this.authenticator ??= this.moduleRef.get(BearerAuthenticator, { strict: false });
    const request = context.switchToHttp().getRequest<AuthenticatedRequest>();
    const user = await this.authenticator.authenticate(request as Parameters<BearerAuthenticator['authenticate']>[0]);
    const roles = this.reflector.getAllAndOverride<string[] | undefined>(REQUIRED_ROLES_KEY, [context.getHandler(), context.getClass()]);
    if (roles && roles.length > 0 && !roles.some((role) => user.roles.includes(role))) {
      throw new ForbiddenException(AuthErrors.INSUFFICIENT_ROLE);
    }
    const required = this.reflector.getAllAndOverride<string | undefined>(REQUIRED_AAL_KEY, [context.getHandler(), context.getClass()]);
    if (required === 'aal2' && user.mfaEnabled && request[AAL_KEY] !== 'aal2') {
      throw new ForbiddenException(AuthErrors.ADDITIONAL_AUTH_REQUIRED);
    }
    return true;
  }
}
