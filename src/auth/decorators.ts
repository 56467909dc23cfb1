import { createParamDecorator, ExecutionContext, SetMetadata } from '@nestjs/common';
import { requestIdOf } from '../common/request-id';

export const IS_PUBLIC_KEY = 'auth:isPublic';

/** Lets a route through a `JwtAuthGuard` installed app-wide (`APP_GUARD`). */
export const Public = (): MethodDecorator & ClassDecorator => SetMetadata(IS_PUBLIC_KEY, true);

/** The `User` that `JwtAuthGuard` loaded for this request. */
export const CurrentUser = createParamDecorator((_data: unknown, context: ExecutionContext) => {
  return context.switchToHttp().getRequest<{ user?: unknown }>().user;
});

/** Who and where, for audit log lines. */
export interface RequestContext {
  requestId: string;
  ip: string;
}

export const RequestCtx = createParamDecorator((_data: unknown, context: ExecutionContext): RequestContext => {
  const request = context.switchToHttp().getRequest<{ ip?: string }>();
  return { requestId: requestIdOf(request), ip: request.ip ?? 'unknown' };
});
