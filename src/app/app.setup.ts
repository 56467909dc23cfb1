import { INestApplication, LoggerService, LogLevel } from '@nestjs/common';
import { HttpAdapterHost, NestFactory } from '@nestjs/core';
import { ExpressAdapter, NestExpressApplication } from '@nestjs/platform-express';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import type * as NestjsPino from 'nestjs-pino';
import type { DestinationStream } from 'pino';
import { AppModule } from './app.module';
import { type AuthModuleOptions, BODY_LIMIT_BYTES, fastifyFrameworkErrors, ProblemDetailsFilter, requestIdOf } from '..';
import { answerClientError, refuseDeclaredOversize } from './protocol-errors';
import { lingerOnClose } from './lingering-close';
import { securityHeaders } from './security-headers';
import type { AppConfig } from './config/app-config';
import { createMetricsRegistry, observeRequests } from './metrics';
import { logRequests } from './logging';
import { rememberRouteTemplate } from './route-template';

export type HttpAdapterKind = 'fastify' | 'express';

/** Node's default `maxHeaderSize`, which bounds the request line and so every path parameter. */
const MAX_REQUEST_LINE_BYTES = 16 * 1024;


export interface CreateAppOptions {
  /** Overrides `config.httpAdapter` (the tests run every suite on both). */
  adapter?: HttpAdapterKind;
  /** A Nest logger instead of the server's own JSON logs (pino), which are used when this is unset. */
  logger?: LoggerService | LogLevel[] | false;
  /** Where pino writes (tests capture it); default stdout. Implies pino even with `logger` set. */
  logDestination?: DestinationStream;
  authOverrides?: Partial<AuthModuleOptions>;
}

/** Builds the standalone app (not yet listening): the same for `main.ts`, the tests and the benchmark. */
export async function createApp(config: AppConfig, options: CreateAppOptions = {}): Promise<INestApplication> {
  // LOG_LEVEL=silent: no logger at all rather than one that writes nothing (no per-request work either).
  const silent = config.logLevel === 'silent' && options.logDestination === undefined;
  const pino = !silent && (options.logger === undefined || options.logDestination !== undefined);
  const metricsRegistry = config.metricsEnabled ? createMetricsRegistry() : undefined;
  const module = AppModule.register(config, options.authOverrides, {
    pinoLogs: pino && { destination: options.logDestination },
    metricsRegistry,
  });
  // With pino, what Nest logs while the app is built waits for it (bufferLogs), so every line is JSON.
  const logging = pino ? { bufferLogs: true } : { logger: silent ? false : options.logger };
  const headers = securityHeaders();
  const headerMap = new Map(Object.entries(headers));
  let app: INestApplication;
  const adapterKind = options.adapter ?? config.httpAdapter;
  if (adapterKind === 'fastify') {
    // Fastify 5 ignores a bare hop count; the function applies Express's rule (trust the last n hops).
    const hops = config.trustProxy;
    const trustProxy = typeof hops === 'number' ? (_address: string, hop: number) => hop < hops : hops;
    const adapter = new FastifyAdapter({
      bodyLimit: BODY_LIMIT_BYTES,
      trustProxy,
      clientErrorHandler: answerClientError,
      // The id pino's request lines and the problem details of a 500 carry (Fastify's own would be req-1, req-2…).
      genReqId: (request: object) => requestIdOf(request),
      // Fastify's router refuses a path parameter over 100 characters with its own 414 before any route
      // runs; Express has no such limit. Up to what Node accepts in a request line at all (16 KiB), the
      // route answers as on Express (an unknown session id is a 404), and beyond, problem details.
      routerOptions: { maxParamLength: MAX_REQUEST_LINE_BYTES },
      frameworkErrors: (error: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
        reply.headers(headers); // the onRequest hook below does not run for these
        fastifyFrameworkErrors(error, request, reply);
      },
    });
    const fastify = await NestFactory.create<NestFastifyApplication>(module, adapter, { ...logging, bodyParser: true });
    const instance = fastify.getHttpAdapter().getInstance();
    instance.addHook('onRequest', (request, reply, done) => {
      reply.headers(headers);
      rememberRouteTemplate(request.raw, request.routeOptions.url);
      done();
    });
    if (metricsRegistry) observeRequests('fastify', instance, metricsRegistry);
    app = fastify;
  } else {
    const express = await NestFactory.create<NestExpressApplication>(module, new ExpressAdapter(), {
      ...logging,
      bodyParser: false,
    });
    if (metricsRegistry) observeRequests('express', express, metricsRegistry);
    express.set('trust proxy', config.trustProxy);
    express.disable('x-powered-by');
    express.getHttpServer().on('clientError', answerClientError);
    express.use((_request: unknown, response: { setHeaders(h: Map<string, string>): void }, next: () => void) => {
      response.setHeaders(headerMap);
      next();
    });
    express.use(refuseDeclaredOversize(BODY_LIMIT_BYTES));
    express.useBodyParser('json', { limit: BODY_LIMIT_BYTES });
    app = express;
  }
  if (config.corsOrigins.length > 0) {
    // An allow-list only, never a wildcard. Credentials (cookies) are allowed only in refresh cookie mode,
    // where a front end on an allowed origin must send the cookie with fetch(…, {credentials: 'include'}).
    app.enableCors({
      origin: config.corsOrigins,
      credentials: config.refreshTokenCookie,
      methods: ['GET', 'POST', 'PATCH', 'DELETE'],
      allowedHeaders: ['Authorization', 'Content-Type'],
      exposedHeaders: ['Retry-After', 'RateLimit-Limit', 'RateLimit-Remaining', 'RateLimit-Reset'],
      maxAge: 600,
    });
  }
  if (pino) {
    const { Logger: NestPinoLogger, PinoLogger } = require('nestjs-pino') as typeof NestjsPino;
    app.useLogger(app.get(NestPinoLogger));
    logRequests(adapterKind, adapterKind === 'fastify' ? app.getHttpAdapter().getInstance() : app, await app.resolve(PinoLogger));
  }
  app.useGlobalFilters(new ProblemDetailsFilter(app.get(HttpAdapterHost)));
  lingerOnClose(app.getHttpServer());
  app.enableShutdownHooks();
  setUpSwagger(app);
  return app;
}

/** `live` alone says little in a generated client; auth routes keep their method names (`signUp`, `me`). */
function operationId(controllerKey: string, methodKey: string): string {
  const area = controllerKey.replace(/Controller$/, '');
  return area === 'Auth' ? methodKey : `${area.toLowerCase()}${methodKey[0].toUpperCase()}${methodKey.slice(1)}`;
}

function setUpSwagger(app: INestApplication): void {
  const document = SwaggerModule.createDocument(
    app,
    new DocumentBuilder()
      .setTitle('Auth service')
      .setDescription(
        'Sign-up, sign-in, sessions, password recovery and change, email verification. ' +
          'Every error is an RFC 9457 problem details body sent as `application/problem+json`.',
      )
      .setVersion('1')
      .setLicense('MIT', 'https://opensource.org/license/mit')
      // Relative: the paths are absolute from whatever origin serves this document, behind a proxy too.
      .addServer('/', 'The origin serving this document')
      .addTag('Authentication', 'Accounts, sign-in, tokens and sessions')
      .addTag('Health', 'Liveness and readiness probes of the standalone server')
      .addBearerAuth({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'The `access_token` of a TokenResponse' })
      .build(),
    { operationIdFactory: operationId },
  );
  SwaggerModule.setup('docs', app, document, { jsonDocumentUrl: 'docs-json' });
}
