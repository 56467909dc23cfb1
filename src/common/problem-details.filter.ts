import { ArgumentsHost, Catch, ExceptionFilter, HttpException, HttpStatus, Logger } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { ThrottlerException } from '@nestjs/throttler';
import { STATUS_CODES } from 'node:http';
import { AuthErrors } from './auth.errors';
import { isDatabaseUnavailable } from './database-errors';
import {
  DatabaseUnavailableException,
  FieldError,
  InternalErrorException,
  MfaRequiredException,
  ServiceBusyException,
  TooManyRequestsException,
  ValidationFailedException,
} from './exceptions';
import { requestIdOf } from './request-id';

/** RFC 9457 problem details. */
export interface ProblemDetails {
  type: string;
  title: string;
  status: number;
  detail: string;
  errors?: FieldError[];
  /** With 403 `Multi-factor authentication required`: what `/signin/mfa` takes. */
  mfa_token?: string;
  request_id?: string;
}

/**
 * Errors raised by the HTTP layer before a route runs (body parsers of Express and Fastify). They carry a
 * status but are not HttpExceptions; their own messages are parser internals, so each gets a fixed text.
 */
export const PARSER_ERRORS: Record<400 | 413 | 415, string> = {
  400: 'Malformed request body: it is not valid JSON',
  413: 'Request body is too large',
  415: 'Unsupported content type: send application/json',
};

function parserErrorStatus(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const { status, statusCode, type, code } = error as Record<string, unknown>;
  const fromBodyParser =
    (typeof type === 'string' && type.startsWith('entity.')) || // Express (body-parser)
    (typeof code === 'string' && code.startsWith('FST_ERR_CTP_')) || // Fastify content-type parsers
    error instanceof SyntaxError; // Fastify's JSON parser
  const httpStatus = typeof statusCode === 'number' ? statusCode : status;
  return fromBodyParser && typeof httpStatus === 'number' && httpStatus in PARSER_ERRORS ? httpStatus : undefined;
}

/** The fixed problem for a body parser's error (malformed JSON, too large, wrong type), or undefined for any other error. */
export function parserProblemOf(error: unknown): ProblemDetails | undefined {
  const status = parserErrorStatus(error instanceof HttpException ? error.cause : error);
  return status === undefined ? undefined : problem(status, PARSER_ERRORS[status as keyof typeof PARSER_ERRORS]);
}

function detailOf(exception: HttpException): string {
  const response = exception.getResponse();
  if (typeof response === 'string') return response;
  const message = (response as { message?: unknown }).message;
  if (typeof message === 'string') return message;
  // Nest's ValidationPipe (a host's, when this filter is installed app-wide) lists one message per rule.
  if (Array.isArray(message) && message.length > 0 && message.every((m) => typeof m === 'string')) return message.join('; ');
  return STATUS_CODES[exception.getStatus()] ?? 'Error';
}

/**
 * Turns every error into an `application/problem+json` body. Anything that is not a deliberate HTTP error
 * becomes a bare 500: logged in full with the request id, shown to the client as a generic message only.
 */
@Catch()
export class ProblemDetailsFilter implements ExceptionFilter {
  private readonly logger = new Logger('ProblemDetails');

  constructor(private readonly adapterHost: HttpAdapterHost) {}

  catch(caught: unknown, host: ArgumentsHost): void {
    const exception = asDatabaseUnavailable(caught) ?? caught;
    const http = host.switchToHttp();
    const request = http.getRequest<object>();
    const response = http.getResponse<object>();
    const { httpAdapter } = this.adapterHost;
    const problem = this.toProblem(exception);

    if (problem.status >= 500) {
      problem.request_id = requestIdOf(request);
    }
    // Shedding load is the service working as meant, not failing: a line (and a stack) for each of
    // thousands of turned-away requests during a flood would only bury the log. An outage of the
    // database is a failure, but one that every request meets alike: a line each, without the stack.
    if (exception instanceof DatabaseUnavailableException) {
      this.logger.warn(`request_id=${problem.request_id} status=503 database unavailable: ${describe(exception.cause)}`);
    } else if (problem.status >= 500 && !(exception instanceof ServiceBusyException)) {
      const cause = exception instanceof HttpException ? (exception.cause ?? exception) : exception;
      this.logger.error(
        `request_id=${problem.request_id} status=${problem.status} ${problem.detail}`,
        cause instanceof Error ? cause.stack : String(cause),
      );
    }
    if (problem.status === HttpStatus.UNAUTHORIZED) {
      httpAdapter.setHeader(response, 'WWW-Authenticate', 'Bearer');
    }
    if (
      exception instanceof TooManyRequestsException ||
      exception instanceof ServiceBusyException ||
      exception instanceof DatabaseUnavailableException
    ) {
      httpAdapter.setHeader(response, 'Retry-After', String(exception.retryAfterSeconds));
    }
    if (exception instanceof TooManyRequestsException) {
      httpAdapter.setHeader(response, 'RateLimit-Limit', String(exception.limit));
      httpAdapter.setHeader(response, 'RateLimit-Remaining', '0');
      httpAdapter.setHeader(response, 'RateLimit-Reset', String(exception.retryAfterSeconds));
    }
    httpAdapter.setHeader(response, 'Content-Type', 'application/problem+json');
    httpAdapter.setHeader(response, 'Cache-Control', 'no-store');
    httpAdapter.reply(response, JSON.stringify(problem), problem.status);
  }

  private toProblem(exception: unknown): ProblemDetails {
    if (exception instanceof ThrottlerException) {
      return problem(HttpStatus.TOO_MANY_REQUESTS, AuthErrors.TOO_MANY_REQUESTS);
    }
    // Nest's adapters wrap body-parser failures in an HttpException whose message quotes the parser,
    // and on Express part of the body (a password, say): answer those with a fixed text instead.
    const parserProblem = parserProblemOf(exception);
    if (parserProblem) return parserProblem;
    if (exception instanceof HttpException) {
      const status = exception.getStatus();
      const body = problem(status, detailOf(exception));
      if (exception instanceof ValidationFailedException) body.errors = exception.errors;
      if (exception instanceof MfaRequiredException) body.mfa_token = exception.mfaToken;
      return body;
    }
    return problem(HttpStatus.INTERNAL_SERVER_ERROR, STATUS_CODES[500]!);
  }
}

/**
 * A database that cannot be reached fails whatever touches it: the routes (whose interceptor wrapped the
 * error as the route's 500), the access-token guard, readiness. Each of those is a 503 instead.
 */
function asDatabaseUnavailable(exception: unknown): DatabaseUnavailableException | undefined {
  if (exception instanceof DatabaseUnavailableException) return exception;
  // A deliberate HTTP error is what it says; a route's 500 carries the real error as its cause.
  if (exception instanceof HttpException && !(exception instanceof InternalErrorException)) return undefined;
  const cause = exception instanceof InternalErrorException ? exception.cause : exception;
  return isDatabaseUnavailable(cause) ? new DatabaseUnavailableException(AuthErrors.DATABASE_UNAVAILABLE, cause) : undefined;
}

function describe(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).replace(/\s+/g, ' ').slice(0, 300);
}

export function problem(status: number, detail: string): ProblemDetails {
  return { type: 'about:blank', title: STATUS_CODES[status] ?? 'Error', status, detail };
}
