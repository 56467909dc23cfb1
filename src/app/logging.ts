import type { IncomingMessage, ServerResponse } from 'node:http';
import type { DynamicModule } from '@nestjs/common';
import type { FastifyInstance } from 'fastify';
import type * as NestjsPino from 'nestjs-pino';
import type { DestinationStream, LoggerOptions } from 'pino';
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
/**
 * Top-level fields only (the lines are flat), and the headers pino's usual serializers would write:
 * wildcard paths (`*.password`) made each line cost five times as much (BENCHMARKS.md).
 */
export const REDACTED_PATHS = [
  ...SECRET_FIELDS.map((field) => `["${field}"]`),
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

let timeSecond = -1;
let timePrefix = '';

/**
 * `,"time":"2026-12-03T14:02:39.512Z"`, as pino's `isoTime`, at a tenth of its cost: the part up to
 * the second is formatted once a second (`toISOString` took about 1 µs a line).
 */
export function isoTimestamp(now = Date.now()): string {
  const second = Math.floor(now / 1000);
  if (second !== timeSecond) {
    timeSecond = second;
    timePrefix = `,"time":"${new Date(second * 1000).toISOString().slice(0, 20)}`;
  }
  return `${timePrefix}${String(now - second * 1000).padStart(3, '0')}Z"`;
}

const REQUEST_ID_IN_TEXT = /\brequest_id=([0-9a-f-]{36})/;

/**
 * The module's lines name their request in their text (`… request_id=7c1d… ip=…`): the id is lifted
 * into a `request_id` field. That ties each line to its request without a per-request logging context
 * (AsyncLocalStorage turns on promise hooks for every promise of every request: about 5 % of `/me`).
 */
function liftRequestId(this: unknown, args: unknown[], method: (...args: unknown[]) => void): void {
  const [fields, message] = args;
  if (typeof message === 'string' && typeof fields === 'object' && fields !== null && !('request_id' in fields)) {
    const found = REQUEST_ID_IN_TEXT.exec(message);
    if (found) args[0] = { ...fields, request_id: found[1] };
  } else if (typeof fields === 'string') {
    const found = REQUEST_ID_IN_TEXT.exec(fields);
    if (found) args.unshift({ request_id: found[1] });
  }
  method.apply(this, args);
}

export function loggerOptions(config: AppConfig): LoggerOptions {
  const logger: LoggerOptions = {
    level: config.logLevel,
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    formatters: { level: (label) => ({ level: label }) },
    timestamp: () => isoTimestamp(),
    hooks: { logMethod: liftRequestId as NonNullable<LoggerOptions['hooks']>['logMethod'] },
  };
  if (config.logFormat === 'pretty') {
    // A development aid (a dev dependency, like the rest of the standalone server's packages).
    logger.transport = { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } };
  }
  return logger;
}

type Response = ServerResponse & { once(event: 'finish', listener: () => void): unknown };

/**
 * One line closes each request, with its id (the one the problem details of a 500 carry), route
 * template, status and duration. Written from the adapter's own hooks rather than by nestjs-pino's
 * middleware: on Fastify that middleware cost about a third of the throughput of a cheap route
 * (BENCHMARKS.md).
 */
export function logRequests(adapter: 'fastify' | 'express', instance: unknown, pinoLogger: NestjsPino.PinoLogger): void {
  const root = () => (pinoLogger.constructor as typeof NestjsPino.PinoLogger).root;
  const finished = (request: IncomingMessage, response: ServerResponse, durationMs: number) => {
    const logger = root();
    const failed = response.statusCode >= 500;
    if (!logger.isLevelEnabled(failed ? 'error' : 'info')) return; // LOG_LEVEL=warn: no line to build
    const line = { request_id: requestIdOf(request), ...requestLine(request, response, Math.round(durationMs)) };
    if (failed) logger.error(line, 'request failed');
    else logger.info(line, 'request completed');
  };
  if (adapter === 'fastify') {
    (instance as FastifyInstance).addHook('onResponse', (request, reply, done) => {
      finished(request.raw, reply.raw, reply.elapsedTime);
      done();
    });
    return;
  }
  const express = instance as { use(handler: (request: IncomingMessage, response: Response, next: () => void) => void): void };
  express.use((request, response, next) => {
    const started = process.hrtime.bigint();
    response.once('finish', () => finished(request, response, Number(process.hrtime.bigint() - started) / 1e6));
    next();
  });
}

/**
 * The standalone server's logger: nestjs-pino for Nest's `Logger` (which the module logs through, so a
 * host keeps whatever logger it chose) and one line per request. Loaded only when used: the library
 * never imports it.
 */
export function loggingModule(config: AppConfig, destination?: DestinationStream): DynamicModule {
  if (config.logFormat === 'pretty') assertPrettyInstalled();
  const { LoggerModule } = require('nestjs-pino') as typeof NestjsPino;
  const options = loggerOptions(config);
  const target = destination ?? (config.logFormat === 'pretty' ? undefined : stdoutBuffered());
  return LoggerModule.forRoot({
    pinoHttp: target ? [options, target] : options,
    // No middleware of its own: `logRequests` does its work in the adapter's hooks.
    forRoutes: [],
  });
}

/**
 * Lines logged in one turn of the event loop go out together in one write(2), at the end of the turn;
 * a quiet server still shows each line at once. pino's asynchronous destination wrote nearly every line
 * on its own, through libuv's thread pool, and that hand-off cost a busy server more than formatting
 * the lines (BENCHMARKS.md, "Logs and metrics"). The write itself is synchronous, as pino's default is:
 * a stdout that does not drain holds the process up rather than piling lines up in memory.
 */
class TickBatchedDestination implements DestinationStream {
  private pending: string[] = [];
  private scheduled = false;

  constructor(private readonly out: ReturnType<typeof import('pino').destination>) {}

  write(line: string): void {
    this.pending.push(line);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.writePending);
  }

  /** What is pending, written now; at shutdown (a signal ends the process without 'exit'). */
  flushSync(): void {
    this.writePending();
    this.out.flushSync();
  }

  private readonly writePending = (): void => {
    this.scheduled = false;
    if (this.pending.length === 0) return;
    const lines = this.pending.join('');
    this.pending = [];
    this.out.write(lines);
  };
}

let buffered: TickBatchedDestination | undefined;

function stdoutBuffered(): DestinationStream {
  const pino = require('pino') as typeof import('pino');
  buffered ??= new TickBatchedDestination(pino.destination({ dest: 1, sync: true }));
  return buffered;
}

/** Writes out what the buffer holds; called when the app shuts down (a signal ends the process without 'exit'). */
export function flushLogs(): void {
  try {
    buffered?.flushSync();
  } catch {
    // Not yet open (nothing written), or stdout already gone: nothing more can be done.
  }
}

function assertPrettyInstalled(): void {
  try {
    require.resolve('pino-pretty');
  } catch {
    throw new Error('LOG_FORMAT=pretty needs the pino-pretty package (npm install --save-dev pino-pretty)');
  }
}
