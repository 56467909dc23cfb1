import type { ApplicationConfig } from '@nestjs/core';
import { AuthRoutes } from './auth-routes';

function sut(globalPrefix: string, routePrefix: string): AuthRoutes {
  return new AuthRoutes({ getGlobalPrefix: () => globalPrefix } as ApplicationConfig, routePrefix);
}

describe(AuthRoutes.name, () => {
  it.each([
    ['', 'api/v1/auth', '/api/v1/auth'],
    ['api', 'v1/auth', '/api/v1/auth'],
    ['/api/', 'auth', '/api/auth'],
    ['api', '', '/api'],
    ['', '', '/'],
  ])('global prefix %j and route prefix %j serve under %j', (globalPrefix, routePrefix, expected) => {
    expect(sut(globalPrefix, routePrefix).basePath()).toBe(expected);
  });

  it('covers its own paths only, query strings included', () => {
    const routes = sut('api', 'v1/auth');
    expect(routes.covers('/api/v1/auth/signin')).toBe(true);
    expect(routes.covers('/api/v1/auth/sessions/1?x=1')).toBe(true);
    expect(routes.covers('/api/v1/auth')).toBe(true);
    expect(routes.covers('/api/v1/authors')).toBe(false);
    expect(routes.covers('/api/v1/other')).toBe(false);
    expect(routes.covers('/api/v1/other?next=/api/v1/auth/signin')).toBe(false);
  });
});
