import type { IncomingMessage, ServerResponse } from 'node:http';
import { DynamicModule, RequestMethod } from '@nestjs/common';
import type * as NestjsPino from 'nestjs-pino';
import type { DestinationStream, LoggerOptions } from 'pino';
import type { Options } from 'pino-http';
import { requestIdOf } from '..';
import type { AppConfig } from './config/app-config';
import { routeTemplateOf } from './route-template';

/**
 * Defence in depth: the request line carries no headers or bodies at all, and the module's own lines
 * name no secret; should an object with one of these keys ever be logged, its value is replaced.
 */
const SECRET_FIELDS = [
  'password',
  'old_password',
  'new_password',
  'token',
  'access_token',
  'refresh_token',
  'mfa_token',
  'code',
  'recovery_codes',
  'secret',
  'otpauth_url',
  'authorization',
  'cookie',
  'set-cookie',
];
export const REDACTED_PATHS = [
  ...SECRET_FIELDS.map((field) => `["${field}"]`),
  ...SECRET_FIELDS.map((field) => `*["${field}"]`),
  'req.headers.authorization',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
];

/** The query string can hold an email (admin search): the path alone is logged. */
function pathOf(request: IncomingMessage): string {
  const url = (request as { originalUrl?: string }).originalUrl ?? request.url ?? '';
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}

function requestLine(request: IncomingMessage, response: ServerResponse, durationMs: number): object {
  return {
    method: request.method,
    route: routeTemplateOf(request) ?? null,
    path: pathOf(request),
    status: response.statusCode,
    duration_ms: durationMs,
  };
}

export function pinoHttpOptions(config: AppConfig): Options {
  const logger: LoggerOptions = {
    level: config.logLevel,
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    formatters: { level: (label) => ({ level: label }) },
    timestamp: () => `,"time":"${new Date().toISOString()}"`,
  };
  if (config.logFormat === 'pretty') {
    // A development aid (a dev dependency, like the rest of the standalone server's packages).
    logger.transport = { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } };
  }
  return {
    ...logger,
    // The id the problem details of a 500 carry, so an operator finds its lines from the answer.
    genReqId: (request) => requestIdOf(request),
    customAttributeKeys: { reqId: 'request_id', responseTime: 'duration_ms' },
    // Every line of a request carries its id, and only the completion line says more about it.
    quietReqLogger: true,
    quietResLogger: true,
    customLogLevel: (_request, response, error) => (error || response.statusCode >= 500 ? 'error' : 'info'),
    customSuccessObject: (request, response, value) => requestLine(request, response, value.duration_ms as number),
    customErrorObject: (request, response, _error, value) => requestLine(request, response, value.duration_ms as number),
    customSuccessMessage: () => 'request completed',
    customErrorMessage: () => 'request failed',
  };
}

/**
 * The standalone server's logger: nestjs-pino for Nest's `Logger` (which the module logs through, so a
 * host keeps whatever logger it chose) and one line per request. Loaded only when used: the library
 * never imports it.
 */
export function loggingModule(config: AppConfig, destination?: DestinationStream): DynamicModule {
  if (config.logFormat === 'pretty') assertPrettyInstalled();
  const { LoggerModule } = require('nestjs-pino') as typeof NestjsPino;
  const options = pinoHttpOptions(config);
  return LoggerModule.forRoot({
    pinoHttp: destination ? [options, destination] : options,
    // nestjs-pino's default route (`{/*splat}`) is never matched by Nest 12's Fastify adapter: every path, spelt for both.
    forRoutes: [{ path: '{*splat}', method: RequestMethod.ALL }],
  });
}

function assertPrettyInstalled(): void {
  try {
    require.resolve('pino-pretty');
  } catch {
    throw new Error('LOG_FORMAT=pretty needs the pino-pretty package (npm install --save-dev pino-pretty)');
  }
}
