import { INestApplication, LoggerService, LogLevel } from '@nestjs/common';
import { HttpAdapterHost, NestFactory } from '@nestjs/core';
import { ExpressAdapter, NestExpressApplication } from '@nestjs/platform-express';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { AppModule } from './app.module';
import { type AuthModuleOptions, BODY_LIMIT_BYTES, fastifyFrameworkErrors, ProblemDetailsFilter } from '..';
import { answerClientError } from './protocol-errors';
import { securityHeaders } from './security-headers';
import type { AppConfig } from './config/app-config';

export type HttpAdapterKind = 'fastify' | 'express';

/** Node's default `maxHeaderSize`, which bounds the request line and so every path parameter. */
const MAX_REQUEST_LINE_BYTES = 16 * 1024;


export interface CreateAppOptions {
  /** Overrides `config.httpAdapter` (the tests run every suite on both). */
  adapter?: HttpAdapterKind;
  logger?: LoggerService | LogLevel[] | false;
  authOverrides?: Partial<AuthModuleOptions>;
}

/** Builds the standalone app (not yet listening): the same for `main.ts`, the tests and the benchmark. */
export async function createApp(config: AppConfig, options: CreateAppOptions = {}): Promise<INestApplication> {
  const module = AppModule.register(config, options.authOverrides);
  const logger = options.logger ?? ['log', 'warn', 'error'];
  const headers = securityHeaders();
  const headerMap = new Map(Object.entries(headers));
  let app: INestApplication;
  if ((options.adapter ?? config.httpAdapter) === 'fastify') {
    // Fastify 5 ignores a bare hop count; the function applies Express's rule (trust the last n hops).
    const hops = config.trustProxy;
    const trustProxy = typeof hops === 'number' ? (_address: string, hop: number) => hop < hops : hops;
    const adapter = new FastifyAdapter({
      bodyLimit: BODY_LIMIT_BYTES,
      trustProxy,
      clientErrorHandler: answerClientError,
      // Fastify's router refuses a path parameter over 100 characters with its own 414 before any route
      // runs; Express has no such limit. Up to what Node accepts in a request line at all (16 KiB), the
      // route answers as on Express (an unknown session id is a 404), and beyond, problem details.
      routerOptions: { maxParamLength: MAX_REQUEST_LINE_BYTES },
      frameworkErrors: (error: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
        reply.headers(headers); // the onRequest hook below does not run for these
        fastifyFrameworkErrors(error, request, reply);
      },
    });
    const fastify = await NestFactory.create<NestFastifyApplication>(module, adapter, { logger, bodyParser: true });
    fastify.getHttpAdapter().getInstance().addHook('onRequest', (_request, reply, done) => {
      reply.headers(headers);
      done();
    });
    app = fastify;
  } else {
    const express = await NestFactory.create<NestExpressApplication>(module, new ExpressAdapter(), {
      logger,
      bodyParser: false,
    });
    express.set('trust proxy', config.trustProxy);
    express.useBodyParser('json', { limit: BODY_LIMIT_BYTES });
    express.disable('x-powered-by');
    express.getHttpServer().on('clientError', answerClientError);
    express.use((_request: unknown, response: { setHeaders(h: Map<string, string>): void }, next: () => void) => {
      response.setHeaders(headerMap);
      next();
    });
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
  app.useGlobalFilters(new ProblemDetailsFilter(app.get(HttpAdapterHost)));
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
