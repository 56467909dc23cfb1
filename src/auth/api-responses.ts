import { applyDecorators, UseGuards } from '@nestjs/common';
import { STATUS_CODES } from 'node:http';
import { AuthErrors } from '../common/auth.errors';
import { VALIDATION_FAILED } from '../common/exceptions';
import { ApiBearerAuth, ApiExtraModels, ApiOperation, ApiResponse, getSchemaPath } from '../common/openapi';
import { PARSER_ERRORS } from '../common/problem-details.filter';
import { OnUnexpectedError } from '../common/unexpected-error';
import { Public } from './decorators';
import { ProblemResponse } from './dto/responses.dto';
import { JwtAuthGuard } from './jwt-auth.guard';

/** Statuses a route can add to those of its kind, each with the `detail` texts it answers them with. */
type OwnStatus = 400 | 401 | 403 | 404 | 429 | 503;

export interface RouteErrors {
  /** The route's own problems by status: each `detail` it can answer (from `AuthErrors`). */
  problems?: Partial<Record<OwnStatus, readonly string[]>>;
  /** The `detail` of the route's 500; the cause is only logged (see `OnUnexpectedError`). */
  unexpected?: string;
  /** The route hashes a password, so a full hashing queue turns it away with 503 and `Retry-After`. */
  hashes?: boolean;
  /** The route validates its query string (`ValidQuery`): 422 with `errors` for a bad value. */
  query?: boolean;
}

type Kind = { bearer: boolean; jsonBody: boolean };

const integerHeader = (description: string) => ({ description, schema: { type: 'integer', minimum: 0 } });

/** Headers the problem details filter and the throttler send with these statuses (SPEC.md, "Shapes"). */
const HEADERS: Partial<Record<number, Record<string, { description: string; schema: object }>>> = {
  401: { 'WWW-Authenticate': { description: 'Always `Bearer`', schema: { type: 'string', enum: ['Bearer'] } } },
  429: {
    'Retry-After': integerHeader('Seconds until a request can succeed'),
    'RateLimit-Limit': integerHeader('Requests (or failed sign-ins, or mail requests) allowed in the window'),
    'RateLimit-Remaining': integerHeader('Requests left in the window: 0 here'),
    'RateLimit-Reset': integerHeader('Seconds until the window resets'),
  },
  503: { 'Retry-After': integerHeader('Seconds to wait before trying again') },
};

const SUMMARIES: Partial<Record<number, string>> = {
  400: 'The request was refused',
  401: 'Missing, invalid or expired credentials',
  403: 'The account may not do this',
  404: 'Not found',
  413: 'The body is over 16 KiB',
  415: 'The body is not `application/json` (forms and text are refused, so a cross-site form cannot post here)',
  422: 'The body (or query string) does not match the schema; `errors` lists each field',
  429: 'Rate limited: retry after `Retry-After` seconds',
  500: 'Unexpected failure, logged with `request_id`',
  503: 'Busy, or the database unavailable: retry after `Retry-After` seconds',
};

/**
 * One documented error status: `application/problem+json` (what the filter really sends, never
 * `application/json`), the ProblemDetails schema, one example per `detail`, and the status's headers.
 */
function problemResponse(status: number, details: readonly string[]): MethodDecorator {
  const unique = [...new Set(details)];
  const examples = Object.fromEntries(
    unique.map((detail, i) => [
      `${status}_${i + 1}`,
      { summary: detail, value: { type: 'about:blank', title: STATUS_CODES[status], status, detail } },
    ]),
  );
  const list = unique.map((detail) => `\`${detail}\``).join(', ');
  return ApiResponse({
    status,
    description: `${SUMMARIES[status] ?? STATUS_CODES[status]}. \`detail\`: ${list}`,
    headers: HEADERS[status],
    content: { 'application/problem+json': { schema: { $ref: getSchemaPath(ProblemResponse) }, examples } },
  });
}

/**
 * The statuses every route of a kind can answer, merged with the route's own, so a route added later
 * gets its errors documented by choosing its kind. Also applies the kind's behaviour (the guard, or
 * `@Public()` for a host that installs the guard app-wide), so the document cannot say one thing and
 * the route do another.
 */
function routeOfKind(kind: Kind, errors: RouteErrors = {}): MethodDecorator {
  const statuses = new Map<number, string[]>();
  const add = (status: number, ...details: readonly string[]) =>
    statuses.set(status, [...(statuses.get(status) ?? []), ...details]);

  if (kind.jsonBody) {
    add(400, PARSER_ERRORS[400]);
    add(413, PARSER_ERRORS[413]);
    add(415, PARSER_ERRORS[415]);
    add(422, VALIDATION_FAILED);
  }
  if (errors.query && !kind.jsonBody) add(422, VALIDATION_FAILED);
  if (kind.bearer) {
    add(401, AuthErrors.NOT_AUTHENTICATED, AuthErrors.INVALID_ACCESS_TOKEN);
    add(403, AuthErrors.INACTIVE_USER);
    add(404, AuthErrors.USER_NOT_FOUND);
  }
  add(429, AuthErrors.TOO_MANY_REQUESTS);
  for (const [status, details] of Object.entries(errors.problems ?? {})) add(Number(status), ...details);
  add(500, errors.unexpected ?? STATUS_CODES[500]!);
  if (errors.hashes) add(503, AuthErrors.BUSY);
  add(503, AuthErrors.DATABASE_UNAVAILABLE);

  const decorators = [...statuses].sort(([a], [b]) => a - b).map(([status, details]) => problemResponse(status, details));
  return applyDecorators(
    ApiExtraModels(ProblemResponse),
    ...(kind.bearer ? [UseGuards(JwtAuthGuard), ApiBearerAuth()] : [Public(), PublicSecurity()]),
    ...(errors.unexpected ? [OnUnexpectedError(errors.unexpected)] : []),
    ...decorators,
  );
}

/**
 * `security: []` on the operation: says outright that no credentials are needed. `summary: undefined`
 * keeps the route's own summary when the two ApiOperation metadata are merged, in either order.
 */
const PublicSecurity = (): MethodDecorator => ApiOperation({ summary: undefined, security: [] });

/** A route anyone may call with a JSON body (sign-up, sign-in, refresh, …). */
export const PublicJsonRoute = (errors?: RouteErrors): MethodDecorator => routeOfKind({ bearer: false, jsonBody: true }, errors);

/** A route anyone may call, without a body (the JWKS). */
export const PublicRoute = (errors?: RouteErrors): MethodDecorator => routeOfKind({ bearer: false, jsonBody: false }, errors);

/** A route that needs the bearer access token and takes no body. */
export const BearerRoute = (errors?: RouteErrors): MethodDecorator => routeOfKind({ bearer: true, jsonBody: false }, errors);

/** A route that needs the bearer access token and takes a JSON body. */
export const BearerJsonRoute = (errors?: RouteErrors): MethodDecorator => routeOfKind({ bearer: true, jsonBody: true }, errors);
