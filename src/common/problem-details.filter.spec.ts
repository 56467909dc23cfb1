import {
  ArgumentsHost,
  BadRequestException,
  ForbiddenException,
  HttpException,
  HttpStatus,
  Logger,
  NotFoundException,
  ServiceUnavailableException,
  UnauthorizedException,
  ValidationPipe,
} from '@nestjs/common';
import { IsEmail } from 'class-validator';
import { HttpAdapterHost } from '@nestjs/core';
import { ThrottlerException } from '@nestjs/throttler';
import { InternalErrorException, ServiceBusyException, TooManyRequestsException, ValidationFailedException } from './exceptions';
import { ProblemDetails, ProblemDetailsFilter } from './problem-details.filter';
import { requestIdOf } from './request-id';

class HostSignInDto {
  @IsEmail()
  email: string;
}

interface Reply {
  status: number;
  headers: Record<string, string>;
  body: ProblemDetails;
  raw: string;
}

function fakeAdapterHost() {
  const response = {};
  const headers: Record<string, string> = {};
  const replies: { body: string; status: number }[] = [];
  const httpAdapter = {
    setHeader: jest.fn((target: object, name: string, value: string) => {
      expect(target).toBe(response);
      headers[name] = value;
    }),
    reply: jest.fn((target: object, body: string, status: number) => {
      expect(target).toBe(response);
      replies.push({ body, status });
    }),
  };
  return { adapterHost: { httpAdapter } as unknown as HttpAdapterHost, response, headers, replies };
}

function argumentsHost(request: object, response: object): ArgumentsHost {
  return {
    switchToHttp: () => ({ getRequest: () => request, getResponse: () => response, getNext: () => undefined }),
  } as unknown as ArgumentsHost;
}

describe(ProblemDetailsFilter.name, () => {
  let logError: jest.SpyInstance;

  beforeEach(() => {
    logError = jest.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
  });

  afterEach(() => {
    logError.mockRestore();
  });

  function handle(exception: unknown, request: object = {}): Reply {
    const { adapterHost, response, headers, replies } = fakeAdapterHost();
    const sut = new ProblemDetailsFilter(adapterHost);

    sut.catch(exception, argumentsHost(request, response));

    expect(replies).toHaveLength(1);
    const [{ body, status }] = replies;
    return { status, headers, body: JSON.parse(body) as ProblemDetails, raw: body };
  }

  it('answers an HttpException with its status and message', () => {
    const reply = handle(new BadRequestException('Email already registered'));

    expect(reply.status).toBe(400);
    expect(reply.body).toEqual({ type: 'about:blank', title: 'Bad Request', status: 400, detail: 'Email already registered' });
  });

  it.each([
    [new NotFoundException('User not found'), 404, 'Not Found', 'User not found'],
    [new ForbiddenException('User account is inactive'), 403, 'Forbidden', 'User account is inactive'],
    [new HttpException('Plain string', 418), 418, "I'm a Teapot", 'Plain string'],
    [new HttpException({ message: ['a', 'b'] }, 400), 400, 'Bad Request', 'a; b'],
    [new HttpException({ message: [] }, 400), 400, 'Bad Request', 'Bad Request'],
    [new HttpException({ message: [1] }, 400), 400, 'Bad Request', 'Bad Request'],
  ])('maps %p to status %i', (exception, status, title, detail) => {
    const reply = handle(exception);

    expect(reply.status).toBe(status);
    expect(reply.body).toMatchObject({ status, title, detail });
  });

  it("keeps the messages of a host's ValidationPipe installed beside it", async () => {
    const pipe = new ValidationPipe();
    const failure = await pipe.transform({ email: 'x' }, { type: 'body', metatype: HostSignInDto }).catch((error: unknown) => error);

    const reply = handle(failure);

    expect(reply.status).toBe(400);
    expect(reply.body.detail).toContain('email must be an email');
  });

  it('keeps the status in the body equal to the HTTP status', () => {
    const reply = handle(new ServiceUnavailableException('Database unavailable'));

    expect(reply.body.status).toBe(reply.status);
    expect(reply.status).toBe(503);
  });

  it('answers a validation failure with 422 and the field errors', () => {
    const errors = [
      { field: 'email', message: 'email must be a valid email address' },
      { field: 'password', message: 'password must be between 8 and 128 characters long' },
    ];

    const reply = handle(new ValidationFailedException(errors));

    expect(reply.status).toBe(422);
    expect(reply.body).toEqual({
      type: 'about:blank',
      title: 'Unprocessable Entity',
      status: 422,
      detail: 'Request validation failed',
      errors,
    });
  });

  it('adds no errors member to other problems', () => {
    expect(handle(new BadRequestException('x')).body).not.toHaveProperty('errors');
  });

  it('answers a throttler rejection with 429 and a fixed message', () => {
    const reply = handle(new ThrottlerException('ThrottlerException: Too Many Requests'));

    expect(reply.status).toBe(429);
    expect(reply.body).toMatchObject({ status: 429, title: 'Too Many Requests', detail: 'Too many requests, try again later' });
  });

  it('sends Retry-After and the RateLimit fields with a TooManyRequestsException', () => {
    const reply = handle(new TooManyRequestsException('Too many failed sign-in attempts', 42, 10));

    expect(reply.status).toBe(429);
    expect(reply.headers['Retry-After']).toBe('42');
    expect(reply.headers['RateLimit-Limit']).toBe('10');
    expect(reply.headers['RateLimit-Remaining']).toBe('0');
    expect(reply.headers['RateLimit-Reset']).toBe('42');
    expect(reply.body.detail).toBe('Too many failed sign-in attempts');
  });

  it('sends WWW-Authenticate: Bearer with a 401', () => {
    const reply = handle(new UnauthorizedException('Not authenticated'));

    expect(reply.status).toBe(401);
    expect(reply.headers['WWW-Authenticate']).toBe('Bearer');
  });

  it.each([new BadRequestException('x'), new ForbiddenException('x'), new Error('x')])(
    'sends no WWW-Authenticate with %p',
    (exception) => {
      expect(handle(exception).headers).not.toHaveProperty('WWW-Authenticate');
    },
  );

  it('sends no Retry-After with other errors', () => {
    expect(handle(new BadRequestException('x')).headers).not.toHaveProperty('Retry-After');
  });

  it.each([new BadRequestException('x'), new Error('boom'), { status: 400, type: 'entity.parse.failed' }])(
    'answers %p as application/problem+json that is not cached',
    (exception) => {
      const reply = handle(exception);

      expect(reply.headers['Content-Type']).toBe('application/problem+json');
      expect(reply.headers['Cache-Control']).toBe('no-store');
    },
  );

  describe('unknown errors', () => {
    const secret = 'duplicate key value violates unique constraint "users_pkey" at /srv/app/db.ts:12';

    it('answers 500 with the generic detail and a request id', () => {
      const request = {};

      const reply = handle(new Error(secret), request);

      expect(reply.status).toBe(500);
      expect(reply.body).toEqual({
        type: 'about:blank',
        title: 'Internal Server Error',
        status: 500,
        detail: 'Internal Server Error',
        request_id: requestIdOf(request),
      });
      expect(reply.body.request_id).toMatch(/^[0-9a-f-]{36}$/);
    });

    it('shows neither the message nor the stack', () => {
      const error = new Error(secret);

      const reply = handle(error);

      expect(reply.raw).not.toContain('duplicate key');
      expect(reply.raw).not.toContain('/srv/app');
      expect(reply.raw).not.toContain('at ');
    });

    it('logs the error with the request id', () => {
      const error = new Error(secret);

      const reply = handle(error);

      expect(logError).toHaveBeenCalledTimes(1);
      const [message, stack] = logError.mock.calls[0] as [string, string];
      expect(message).toContain(`request_id=${reply.body.request_id}`);
      expect(stack).toContain(secret);
    });

    it.each([null, undefined, 'a string', 42, { message: 'an object' }])('answers the non-error %p with 500', (thrown) => {
      const reply = handle(thrown);

      expect(reply.status).toBe(500);
      expect(reply.body.detail).toBe('Internal Server Error');
    });

    it('shows the route generic message of an InternalErrorException, never its cause', () => {
      const reply = handle(new InternalErrorException('Error during sign in', new Error(secret)));

      expect(reply.status).toBe(500);
      expect(reply.body.detail).toBe('Error during sign in');
      expect(reply.body.request_id).toEqual(expect.any(String));
      expect(reply.raw).not.toContain('duplicate key');
      expect(logError.mock.calls[0][1]).toContain(secret);
    });

    it('answers a busy service with 503 and Retry-After, without an error line per turned-away request', () => {
      const reply = handle(new ServiceBusyException('The service is busy, try again in a moment', 1));

      expect(reply.status).toBe(503);
      expect(reply.headers['Retry-After']).toBe('1');
      expect(reply.body.request_id).toEqual(expect.any(String));
      expect(logError).not.toHaveBeenCalled();
    });

    describe('when the database is unavailable', () => {
      let logWarn: jest.SpyInstance;

      beforeEach(() => {
        logWarn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
      });

      afterEach(() => logWarn.mockRestore());

      const refused = () => Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
      const queryFailed = (driverError: Error) => Object.assign(new Error(driverError.message), { name: 'QueryFailedError', driverError });

      it.each([
        ['a refused connection, thrown by a guard', refused()],
        ["a refused connection, wrapped as the route's 500", new InternalErrorException('Error during sign in', refused())],
        ['a read timeout inside a QueryFailedError', new InternalErrorException('x', queryFailed(new Error('Query read timeout')))],
        ['a pool that could not connect in time', new Error('timeout exceeded when trying to connect')],
        ['PostgreSQL shutting down (57P01)', queryFailed(Object.assign(new Error('terminating connection'), { code: '57P01' }))],
        ['the statement timeout (57014)', queryFailed(Object.assign(new Error('canceling statement'), { code: '57014' }))],
        ['SQLite busy past its timeout', queryFailed(Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' }))],
      ])('answers %s with 503, Retry-After and one warning line without a stack', (_what, error) => {
        const reply = handle(error);

        expect(reply.status).toBe(503);
        expect(reply.body.detail).toBe('The database is unavailable, try again in a moment');
        expect(reply.headers['Retry-After']).toBe('5');
        expect(reply.raw).not.toMatch(/ECONNREFUSED|5432|timeout|SQLITE/);
        expect(logError).not.toHaveBeenCalled();
        expect(logWarn).toHaveBeenCalledTimes(1);
        expect(logWarn.mock.calls[0][0]).toContain(`request_id=${reply.body.request_id}`);
      });

      it.each([
        ['a unique violation', queryFailed(Object.assign(new Error('duplicate key'), { code: '23505' }))],
        ['a missing table', queryFailed(Object.assign(new Error('relation "users" does not exist'), { code: '42P01' }))],
        ['a deliberate HTTP error', new BadRequestException('ECONNREFUSED')],
      ])('leaves %s as it was', (_what, error) => {
        expect(handle(error).status).not.toBe(503);
      });
    });

    it('gives no request id to a client error', () => {
      expect(handle(new BadRequestException('x')).body).not.toHaveProperty('request_id');
    });
  });

  describe('body parser errors', () => {
    it('answers an Express JSON parse failure with 400 and a fixed message', () => {
      const parseError = Object.assign(new SyntaxError('Unexpected token } in JSON at position 12'), {
        status: 400,
        statusCode: 400,
        type: 'entity.parse.failed',
        body: '{"email": }',
      });

      const reply = handle(parseError);

      expect(reply.status).toBe(400);
      expect(reply.body.detail).toBe('Malformed request body: it is not valid JSON');
      expect(reply.raw).not.toContain('Unexpected token');
    });

    it('answers a plain body-parser-like object with 400', () => {
      const reply = handle({ status: 400, type: 'entity.parse.failed' });

      expect(reply.status).toBe(400);
      expect(reply.body.status).toBe(400);
    });

    it('answers an Express body that is too large with 413', () => {
      const reply = handle({ status: 413, statusCode: 413, type: 'entity.too.large', message: 'request entity too large' });

      expect(reply.status).toBe(413);
      expect(reply.body.detail).toBe('Request body is too large');
    });

    it('answers a Fastify body that is too large with 413', () => {
      const reply = handle({ statusCode: 413, code: 'FST_ERR_CTP_BODY_TOO_LARGE', message: 'Request body is too large' });

      expect(reply.status).toBe(413);
      expect(reply.body).toMatchObject({ status: 413, title: 'Payload Too Large' });
    });

    it('answers a Fastify unsupported media type with 415', () => {
      const reply = handle({ statusCode: 415, code: 'FST_ERR_CTP_INVALID_MEDIA_TYPE' });

      expect(reply.status).toBe(415);
    });

    it('answers a Fastify JSON syntax error with 400', () => {
      const reply = handle(Object.assign(new SyntaxError('Unexpected end of JSON input'), { statusCode: 400 }));

      expect(reply.status).toBe(400);
    });

    it('does not trust a status on an error that is not from a body parser', () => {
      const reply = handle(Object.assign(new Error('driver says no'), { status: 400 }));

      expect(reply.status).toBe(500);
    });

    it('gives the fixed text to a parser error the adapter wrapped in an HttpException, never its message', () => {
      const parserError = Object.assign(new SyntaxError('Unexpected token h in "password": hunter2sec'), {
        status: 400,
        type: 'entity.parse.failed',
      });
      const reply = handle(new BadRequestException(parserError.message, { cause: parserError }));

      expect(reply.status).toBe(400);
      expect(reply.body.detail).toBe('Malformed request body: it is not valid JSON');
      expect(reply.raw).not.toContain('hunter2');
    });

    it('answers a wrapped Fastify body-too-large error with 413 and the fixed text', () => {
      const tooLarge = Object.assign(new Error('Request body is too large'), { statusCode: 413, code: 'FST_ERR_CTP_BODY_TOO_LARGE' });
      const reply = handle(new HttpException(tooLarge.message, 413, { cause: tooLarge }));

      expect(reply.status).toBe(413);
      expect(reply.body.detail).toBe('Request body is too large');
    });
  });

  it('exposes HttpStatus values unchanged for every known client error', () => {
    for (const status of [HttpStatus.BAD_REQUEST, HttpStatus.CONFLICT, HttpStatus.GONE]) {
      expect(handle(new HttpException('x', status)).status).toBe(status);
    }
  });
});
