import { HttpException, HttpStatus } from '@nestjs/common';

export interface FieldError {
  field: string;
  message: string;
}

export const VALIDATION_FAILED = 'Request validation failed';

/** 422: the body did not match the route's schema. */
export class ValidationFailedException extends HttpException {
  constructor(readonly errors: FieldError[]) {
    super(VALIDATION_FAILED, HttpStatus.UNPROCESSABLE_ENTITY);
  }
}

/** 429 that says how long to wait, and the budget that ran out (`limit`, for the RateLimit fields). */
export class TooManyRequestsException extends HttpException {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
    readonly limit: number,
  ) {
    super(message, HttpStatus.TOO_MANY_REQUESTS);
  }
}

/** 503 that says how long to wait: the service is saturated, not broken. */
export class ServiceBusyException extends HttpException {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(message, HttpStatus.SERVICE_UNAVAILABLE);
  }
}

/**
 * 503: the database did not answer (refused, reset, timed out, shutting down). The request did nothing
 * that committed and can be sent again as it is; `cause` is logged, never shown.
 */
export class DatabaseUnavailableException extends HttpException {
  readonly retryAfterSeconds = 5;

  constructor(message: string, cause: unknown) {
    super(message, HttpStatus.SERVICE_UNAVAILABLE, { cause });
  }
}

/**
 * 500 whose public detail is the route's generic message; `cause` is logged, never shown, because
 * driver and library messages can carry SQL, paths or user data.
 */
export class InternalErrorException extends HttpException {
  constructor(detail: string, cause: unknown) {
    super(detail, HttpStatus.INTERNAL_SERVER_ERROR, { cause });
  }
}

/** 403 after a right password for an account with a second factor: `mfa_token` continues at `/signin/mfa`. */
export class MfaRequiredException extends HttpException {
  constructor(
    message: string,
    readonly mfaToken: string,
  ) {
    super(message, HttpStatus.FORBIDDEN);
  }
}
