import { createServer, IncomingMessage, Server } from 'node:http';
import {
  Controller,
  DynamicModule,
  Get,
  Header,
  Inject,
  Injectable,
  Logger,
  Module,
  OnApplicationBootstrap,
  OnApplicationShutdown,
} from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import type { FastifyInstance } from 'fastify';
import type { Histogram, Registry } from 'prom-client';
import type * as PromClient from 'prom-client';
import type { AppConfig } from './config/app-config';
import { routeTemplateOf } from './route-template';

export const METRICS_REGISTRY = Symbol('METRICS_REGISTRY');

/** A route label for requests no route matched: raw paths would give every scanner's guess a series. */
const UNMATCHED_ROUTE = 'unmatched';

/** Seconds; from a cached /me (about a millisecond) to a sign-in waiting for a hashing slot. */
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

function promClient(): typeof PromClient {
  return require('prom-client') as typeof PromClient;
}

/** The standalone server's registry: the module's metrics, the request histogram and Node's process metrics. */
export function createMetricsRegistry(): Registry {
  const client = promClient();
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });
  return registry;
}

function requestHistogram(registry: Registry): Histogram<'method' | 'route' | 'status_code'> {
  const client = promClient();
  return new client.Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP requests by method, route template and status code',
    labelNames: ['method', 'route', 'status_code'],
    buckets: DURATION_BUCKETS,
    registers: [registry],
  });
}

/**
 * Times every request at the adapter, so that answers given before any route code runs (a guard's 401
 * or 429, a 404, a body refused by the parser) are counted too.
 */
export function observeRequests(adapter: 'fastify' | 'express', instance: unknown, registry: Registry): void {
  const histogram = requestHistogram(registry);
  if (adapter === 'fastify') {
    (instance as FastifyInstance).addHook('onResponse', (request, reply, done) => {
      const route = request.routeOptions.url ?? UNMATCHED_ROUTE;
      histogram.observe({ method: request.method, route, status_code: reply.statusCode }, reply.elapsedTime / 1000);
      done();
    });
    return;
  }
  const express = instance as { use(handler: (request: IncomingMessage, response: { statusCode: number; once(event: 'finish', listener: () => void): void }, next: () => void) => void): void };
  express.use((request, response, next) => {
    const started = process.hrtime.bigint();
    response.once('finish', () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const route = routeTemplateOf(request) ?? UNMATCHED_ROUTE;
      histogram.observe({ method: request.method ?? 'GET', route, status_code: response.statusCode }, seconds);
    });
    next();
  });
}

/** GET /metrics on the app's own port (METRICS_PORT unset). Not an API route: left out of the document. */
@ApiExcludeController()
@Controller('metrics')
export class MetricsController {
  constructor(@Inject(METRICS_REGISTRY) private readonly registry: Registry) {}

  @Get()
  @Header('Content-Type', 'text/plain; version=0.0.4; charset=utf-8')
  @Header('Cache-Control', 'no-store')
  metrics(): Promise<string> {
    return this.registry.metrics();
  }
}

/** GET /metrics alone on METRICS_PORT, so the app's public port can stay without it. */
@Injectable()
export class MetricsServer implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('Metrics');
  private server?: Server;

  constructor(
    @Inject(METRICS_REGISTRY) private readonly registry: Registry,
    @Inject('METRICS_PORT') private readonly port: number,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    const server = createServer((request, response) => {
      if (request.method !== 'GET' || (request.url ?? '').split('?')[0] !== '/metrics') {
        response.writeHead(404, { 'Content-Type': 'text/plain' }).end('Not found\n');
        return;
      }
      this.registry.metrics().then(
        (body) => response.writeHead(200, { 'Content-Type': this.registry.contentType, 'Cache-Control': 'no-store' }).end(body),
        (error: Error) => {
          this.logger.error(`collecting metrics failed: ${error.message}`);
          response.writeHead(500, { 'Content-Type': 'text/plain' }).end('Collecting metrics failed\n');
        },
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '0.0.0.0', () => resolve());
    });
    this.server = server;
    this.logger.log(`metrics at :${this.port}/metrics`);
  }

  async onApplicationShutdown(): Promise<void> {
    const server = this.server;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }
}

/** /metrics on the app's port, or on its own with METRICS_PORT; nothing at all unless METRICS_ENABLED. */
@Module({})
export class MetricsModule {
  static register(config: AppConfig, registry: Registry): DynamicModule {
    const onOwnPort = config.metricsPort !== undefined;
    return {
      module: MetricsModule,
      controllers: onOwnPort ? [] : [MetricsController],
      providers: [
        { provide: METRICS_REGISTRY, useValue: registry },
        ...(onOwnPort ? [{ provide: 'METRICS_PORT', useValue: config.metricsPort }, MetricsServer] : []),
      ],
    };
  }
}
