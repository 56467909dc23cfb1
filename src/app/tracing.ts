import type { IncomingMessage } from 'node:http';
import type * as SdkNode from '@opentelemetry/sdk-node';
import { routeTemplateOf } from './route-template';

type Env = Record<string, string | undefined>;

/** Probes and scrapes arrive every few seconds and say nothing about users' requests. */
const UNTRACED_PATHS = new Set(['/health/live', '/metrics']);

let running: SdkNode.NodeSDK | undefined;

/**
 * OpenTelemetry traces (HTTP server and client, Fastify or Express, PostgreSQL, Redis) to the OTLP
 * endpoint of `OTEL_EXPORTER_OTLP_ENDPOINT`, with the SDK's other `OTEL_*` variables as usual. Without
 * that variable nothing of OpenTelemetry is loaded. Must run before the app's modules load: the
 * instrumentations patch `http`, `pg`, `ioredis` and the adapters as they are required. (Nest's own
 * instrumentation is left out: it supports Nest before 12 only; the adapter's spans name the route.)
 * Returns whether tracing started.
 */
export function startTracing(env: Env): boolean {
  if (!env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim()) return false;
  // Traces only: metrics are Prometheus' (GET /metrics) and logs pino's, unless asked for explicitly.
  env.OTEL_METRICS_EXPORTER ??= 'none';
  env.OTEL_LOGS_EXPORTER ??= 'none';
  const { NodeSDK } = require('@opentelemetry/sdk-node') as typeof SdkNode;
  const { HttpInstrumentation } = require('@opentelemetry/instrumentation-http') as typeof import('@opentelemetry/instrumentation-http');
  const { FastifyInstrumentation } = require('@opentelemetry/instrumentation-fastify') as typeof import('@opentelemetry/instrumentation-fastify');
  const { ExpressInstrumentation } = require('@opentelemetry/instrumentation-express') as typeof import('@opentelemetry/instrumentation-express');
  const { PgInstrumentation } = require('@opentelemetry/instrumentation-pg') as typeof import('@opentelemetry/instrumentation-pg');
  const { IORedisInstrumentation } = require('@opentelemetry/instrumentation-ioredis') as typeof import('@opentelemetry/instrumentation-ioredis');
  running = new NodeSDK({
    serviceName: env.OTEL_SERVICE_NAME ?? 'auth-service',
    instrumentations: [
      new HttpInstrumentation({
        ignoreIncomingRequestHook: (request: IncomingMessage) => UNTRACED_PATHS.has((request.url ?? '').split('?')[0]),
        // Nest 12 loads Fastify and Express as ES modules, which the instrumentations (hooking require)
        // do not see: the route template comes from the adapter's own record of it instead.
        applyCustomAttributesOnSpan: (span, request) => {
          const route = 'method' in request ? routeTemplateOf(request as IncomingMessage) : undefined;
          if (route === undefined) return;
          span.setAttribute('http.route', route);
          span.updateName(`${request.method ?? 'GET'} ${route}`);
        },
      }),
      // For a host of these adapters loaded through require; here they add nothing (see above).
      new FastifyInstrumentation(),
      new ExpressInstrumentation(),
      // Statement text only, never its parameters (emails, hashes); no span for a query outside a request.
      new PgInstrumentation({ enhancedDatabaseReporting: false, requireParentSpan: true }),
      new IORedisInstrumentation({ requireParentSpan: true }),
    ],
  });
  running.start();
  return true;
}

/** Sends the spans still buffered; called when the app shuts down. */
export async function stopTracing(): Promise<void> {
  const sdk = running;
  running = undefined;
  await sdk?.shutdown();
}
