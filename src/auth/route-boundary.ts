import { Injectable, NestMiddleware, OnModuleInit } from '@nestjs/common';
import { ApplicationConfig, HttpAdapterHost } from '@nestjs/core';
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import { ProblemDetails, ProblemDetailsFilter, parserProblemOf, problem } from '../common/problem-details.filter';
import { AuthRoutes } from './auth-routes';

/** Auth bodies are a few hundred bytes; anything near this is not a legitimate request. */
export const BODY_LIMIT_BYTES = 16 * 1024;

function sendProblem(response: ServerResponse, body: ProblemDetails): void {
  response.statusCode = body.status;
  response.setHeader('Content-Type', 'application/problem+json');
  response.setHeader('Cache-Control', 'no-store');
  response.end(JSON.stringify(body));
}

/**
 * 413 for a body over `BODY_LIMIT_BYTES` on the auth routes, whatever limit the host's body parser has.
 * On Fastify this runs before the body is read; on Express after the host's parser, which is bounded by
 * its own limit (100 KiB by default).
 */
@Injectable()
export class BodyLimitMiddleware implements NestMiddleware {
  use(request: IncomingMessage & { body?: unknown }, response: ServerResponse, next: () => void): void {
    const declared = Number(request.headers['content-length']);
    const size = Number.isFinite(declared)
      ? declared
      : request.body === undefined
        ? 0
        : Buffer.byteLength(JSON.stringify(request.body) ?? '');
    if (size > BODY_LIMIT_BYTES) return sendProblem(response, problem(413, 'Request body is too large'));
    next();
  }
}

/** Fastify's router refusals, answered before any route (and so any route error handler) is chosen. */
const ROUTER_PROBLEMS: Record<string, ProblemDetails> = {
  FST_ERR_BAD_URL: problem(400, 'Malformed request path: it is not valid percent-encoding'),
  FST_ERR_MAX_PARAM_LENGTH: problem(414, 'Request path segment is too long'),
};

/**
 * For Fastify's `frameworkErrors` option (`new FastifyAdapter({ frameworkErrors: … })`): the router
 * refuses an undecodable path or an over-long path parameter before any hook or route runs, so neither
 * the module nor a host filter sees it, and Fastify would answer its own JSON. This answers problem
 * details instead, with a fixed text (Fastify's quotes the path).
 */
export function fastifyFrameworkErrors(error: { code?: string }, _request: unknown, reply: FastifyReplyLike): void {
  const body = (error.code && ROUTER_PROBLEMS[error.code]) || problem(500, STATUS_CODES[500]!);
  reply.status(body.status).header('Content-Type', 'application/problem+json').header('Cache-Control', 'no-store').send(JSON.stringify(body));
}

type ExpressErrorHandler = (error: unknown, request: IncomingMessage, response: ServerResponse, next: (error?: unknown) => void) => void;
type FastifyErrorHandler = (this: unknown, error: unknown, request: { url: string }, reply: FastifyReplyLike) => unknown;
interface FastifyLike {
  errorHandler: FastifyErrorHandler;
  addHook(name: 'onRoute', hook: (route: { url: string; errorHandler?: FastifyErrorHandler }) => void): void;
}
interface FastifyReplyLike {
  status(code: number): FastifyReplyLike;
  header(name: string, value: string): FastifyReplyLike;
  send(body: string): unknown;
}

/**
 * Body parser failures (malformed JSON, wrong content type, over the host's limit) happen before any
 * route runs, so Nest hands them to the host's global filters, not to the auth controller's. For the
 * auth routes they get the module's problem details anyway: on Express through an error handler mounted
 * on the route prefix ahead of Nest's; on Fastify through an error handler of each auth route, which
 * passes anything else on to the app's. Nothing changes when the host installed `ProblemDetailsFilter`
 * app-wide (the standalone server does).
 */
@Injectable()
export class ParserErrorBoundary implements OnModuleInit {
  constructor(
    private readonly adapterHost: HttpAdapterHost,
    private readonly application: ApplicationConfig,
    private readonly routes: AuthRoutes,
  ) {
    // Routes are registered after the providers exist but before any init hook, and a route's own error
    // handler can only be given as it is registered.
    const adapter = this.adapterHost.httpAdapter;
    if (adapter?.getType() === 'fastify') this.wrapFastifyRoutes(adapter.getInstance() as FastifyLike);
  }

  private get needed(): boolean {
    return !this.application.getGlobalFilters().some((filter) => filter instanceof ProblemDetailsFilter);
  }

  /** Express: Nest mounts its own error handler after the init hooks, so this one comes first. */
  onModuleInit(): void {
    const adapter = this.adapterHost.httpAdapter;
    if (adapter?.getType() !== 'express' || !this.needed) return;
    const handler: ExpressErrorHandler = (error, _request, response, next) => {
      const body = parserProblemOf(error);
      if (body) sendProblem(response, body);
      else next(error);
    };
    (adapter.getInstance() as { use(path: string, handler: ExpressErrorHandler): void }).use(this.routes.basePath(), handler);
  }

  private wrapFastifyRoutes(fastify: FastifyLike): void {
    const boundary = this;
    const handler: FastifyErrorHandler = function (error, request, reply) {
      const body = boundary.needed ? parserProblemOf(error) : undefined;
      if (!body) return fastify.errorHandler.call(this, error, request, reply);
      return reply.status(body.status).header('Content-Type', 'application/problem+json').header('Cache-Control', 'no-store').send(JSON.stringify(body));
    };
    fastify.addHook('onRoute', (route) => {
      if (this.routes.covers(route.url) && !route.errorHandler) route.errorHandler = handler;
    });
  }
}
