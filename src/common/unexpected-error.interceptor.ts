import { CallHandler, ExecutionContext, HttpException, Injectable, NestInterceptor, SetMetadata } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { catchError, Observable, throwError } from 'rxjs';
import { InternalErrorException } from './exceptions';

const UNEXPECTED_ERROR_DETAIL = 'auth:unexpectedErrorDetail';

/** The public `detail` of a 500 from this route; the real error is only logged. */
export const OnUnexpectedError = (detail: string): MethodDecorator => SetMetadata(UNEXPECTED_ERROR_DETAIL, detail);

/** Gives each route's unexpected failures the route's own generic message, so handlers hold no try/catch. */
@Injectable()
export class UnexpectedErrorInterceptor implements NestInterceptor {
  constructor(private readonly reflector: Reflector) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const detail = this.reflector.get<string | undefined>(UNEXPECTED_ERROR_DETAIL, context.getHandler());
    if (!detail) return next.handle();
    return next
      .handle()
      .pipe(
        catchError((error: unknown) =>
          throwError(() => (error instanceof HttpException ? error : new InternalErrorException(detail, error))),
        ),
      );
  }
}
