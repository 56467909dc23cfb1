import type { IncomingMessage } from 'node:http';

const ROUTE_TEMPLATE = Symbol('routeTemplate');

type WithRouteTemplate = IncomingMessage & { [ROUTE_TEMPLATE]?: string; route?: { path?: unknown } };

/** Fastify knows the matched route on its own request object only: kept on Node's for the request log. */
export function rememberRouteTemplate(request: IncomingMessage, template: string | undefined): void {
  if (template !== undefined) (request as WithRouteTemplate)[ROUTE_TEMPLATE] = template;
}

/**
 * The route a request matched, as declared (`/api/v1/auth/sessions/:id`), never the path it asked for:
 * bounded, so it can label metrics, and free of ids. Undefined when no route matched (a 404).
 */
export function routeTemplateOf(request: IncomingMessage): string | undefined {
  const holder = request as WithRouteTemplate;
  const expressPath = holder.route?.path;
  // Express also names the catch-all path a middleware was mounted on (the request logger's), which a
  // request that matched no route keeps.
  const routed = typeof expressPath === 'string' && !expressPath.includes('{*') ? expressPath : undefined;
  return holder[ROUTE_TEMPLATE] ?? routed;
}
