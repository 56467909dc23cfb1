import { createParamDecorator, ExecutionContext, SetMetadata } from '@nestjs/common';
import { requestIdOf } from '../common/request-id';

export const IS_PUBLIC_KEY = 'auth:isPublic';

/** Lets a route through a `JwtAuthGuard` installed app-wide (`APP_GUARD`). */
export const Public = (): MethodDecorator & ClassDecorator => SetMetadata(IS_PUBLIC_KEY, true);

/** The `User` that `JwtAuthGuard` loaded for this request. */
export const CurrentUser = createParamDecorator((_data: unknown, context: ExecutionContext) => {
  return context.switchToHttp().getRequest<{ user?: unknown }>().user;
});

/** Where the guard leaves the id of the session the access token belongs to, and its assurance level. */
export const SESSION_ID_KEY = Symbol('authSessionId');
export const AAL_KEY = Symbol('authAal');

export interface AuthenticatedRequest {
  [SESSION_ID_KEY]?: string;
  [AAL_KEY]?: 'aal1' | 'aal2';
}

export const REQUIRED_AAL_KEY = 'auth:requiredAal';

/**
 * With `JwtAuthGuard`: a user who has a second factor must have shown it in this session (`aal2`), or
 * the route answers 403 `Additional authentication required`. Users without one pass at `aal1`.
 */
export const RequireAal = (level: 'aal2'): MethodDecorator & ClassDecorator => SetMetadata(REQUIRED_AAL_KEY, level);

export const REQUIRED_ROLES_KEY = 'auth:requiredRoles';

/**
 * With `JwtAuthGuard`: the user must hold at least one of `roles`, or the route answers 403
 * `Insufficient role`. Checked against the user as stored (through the access check's cache, which a
 * role change drops on every instance), not the token's copy, so a revoked role ends at once.
 */
export const Roles = (...roles: string[]): MethodDecorator & ClassDecorator => SetMetadata(REQUIRED_ROLES_KEY, roles);

/** The id of the session whose access token authenticated this request (routes behind `JwtAuthGuard`). */
export const CurrentSessionId = createParamDecorator((_data: unknown, context: ExecutionContext) => {
  return context.switchToHttp().getRequest<AuthenticatedRequest>()[SESSION_ID_KEY];
});

/** Who and where, for audit log lines. */
export interface RequestContext {
  requestId: string;
  ip: string;
  /** The User-Agent header, recorded on sessions. */
  userAgent: string | null;
}

export const RequestCtx = createParamDecorator((_data: unknown, context: ExecutionContext): RequestContext => {
  const request = context.switchToHttp().getRequest<{ ip?: string; headers: Record<string, string | string[] | undefined> }>();
  const userAgent = request.headers['user-agent'];
  return { requestId: requestIdOf(request), ip: request.ip ?? 'unknown', userAgent: typeof userAgent === 'string' ? userAgent : null };
});
