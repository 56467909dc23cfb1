import { CanActivate, ExecutionContext, Injectable } from '@nestjs/common';
import { ModuleRef, Reflector } from '@nestjs/core';
import { BearerAuthenticator } from './bearer-authenticator';
import { IS_PUBLIC_KEY } from './decorators';

/**
 * Requires a valid access token and puts its user on the request (read it with `@CurrentUser()`).
 * Use it per route, or app-wide as `APP_GUARD` together with `@Public()` on open routes.
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
    await this.authenticator.authenticate(context.switchToHttp().getRequest());
    return true;
  }
}
