export const DEFAULT_ROUTE_PREFIX = 'api/v1/auth';

/** The route prefix the module was given, normalised to no leading or trailing slash. */
export const AUTH_ROUTE_PREFIX = Symbol('AUTH_ROUTE_PREFIX');

export function normaliseRoutePrefix(prefix: string): string {
  const trimmed = prefix.replace(/^\/+|\/+$/g, '');
  if (!/^[A-Za-z0-9._~-]+(\/[A-Za-z0-9._~-]+)*$/.test(trimmed) && trimmed !== '') {
    throw new Error(`AuthModule: routePrefix must be a path of plain segments, e.g. 'v1/auth': ${prefix}`);
  }
  return trimmed;
}
