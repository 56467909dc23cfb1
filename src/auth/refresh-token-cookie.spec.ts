import type { ApplicationConfig } from '@nestjs/core';
import { ValidationFailedException } from '../common/exceptions';
import type { AuthConfig } from '../options/auth-config';
import { AuthRoutes } from './auth-routes';
import type { TokenResponse } from './dto/responses.dto';
import { cookieValue, RefreshTokenCookie } from './refresh-token-cookie';

function responseRecorder() {
  const headers: [string, string][] = [];
  return { headers, header: (name: string, value: string) => headers.push([name, value]) };
}

const body: TokenResponse = {
  access_token: 'a.b.c',
  token_type: 'bearer',
  expires_in: 1800,
  refresh_token: 'r'.repeat(43),
  refresh_expires_in: 600,
  user: {} as TokenResponse['user'],
};

function sut(refreshTokenCookie: boolean): RefreshTokenCookie {
  const routes = new AuthRoutes({ getGlobalPrefix: () => '' } as ApplicationConfig, 'api/v1/auth');
  return new RefreshTokenCookie({ refreshTokenCookie, refreshTokenTtlSeconds: 600 } as AuthConfig, routes);
}

describe(cookieValue.name, () => {
  it.each<[string | string[] | undefined, string | undefined]>([
    ['refresh_token=abc', 'abc'],
    ['theme=dark; refresh_token=abc-_1; lang=en', 'abc-_1'],
    ['  refresh_token =abc ', 'abc'],
    ['xrefresh_token=abc', undefined],
    ['refresh_token=', undefined],
    ['refresh_token', undefined],
    ['other=1', undefined],
    [undefined, undefined],
    [['refresh_token=abc'], undefined],
  ])('reads %j as %j', (header, expected) => {
    expect(cookieValue(header, 'refresh_token')).toBe(expected);
  });
});

describe(RefreshTokenCookie.name, () => {
  it('in body mode leaves the response alone and requires the token in the body', () => {
    const response = responseRecorder();
    expect(sut(false).deliver(response, body)).toBe(body);
    sut(false).clear(response);
    expect(response.headers).toEqual([]);
    expect(sut(false).read({ headers: { cookie: 'refresh_token=from-cookie' } }, 'from-body')).toBe('from-body');
    expect(() => sut(false).read({ headers: {} }, undefined)).toThrow(ValidationFailedException);
    expect(() => sut(false).read({ headers: {} }, null)).toThrow(ValidationFailedException);
  });

  it('in cookie mode moves the token into an HttpOnly, Secure, SameSite=Strict cookie on the auth path', () => {
    const response = responseRecorder();
    const delivered = sut(true).deliver(response, body);
    expect(delivered).not.toHaveProperty('refresh_token');
    expect(delivered).toMatchObject({ access_token: 'a.b.c', refresh_expires_in: 600 });
    expect(response.headers).toEqual([
      ['Set-Cookie', `refresh_token=${body.refresh_token}; Max-Age=600; Path=/api/v1/auth; HttpOnly; Secure; SameSite=Strict`],
    ]);
  });

  it('in cookie mode reads the cookie first, then the body, and clears with Max-Age=0', () => {
    expect(sut(true).read({ headers: { cookie: 'refresh_token=from-cookie' } }, 'from-body')).toBe('from-cookie');
    expect(sut(true).read({ headers: {} }, 'from-body')).toBe('from-body');
    expect(sut(true).read({ headers: {} }, undefined)).toBeUndefined();
    expect(sut(true).read({ headers: {} }, null)).toBeUndefined();
    const response = responseRecorder();
    sut(true).clear(response);
    expect(response.headers).toEqual([
      ['Set-Cookie', 'refresh_token=; Max-Age=0; Path=/api/v1/auth; HttpOnly; Secure; SameSite=Strict'],
    ]);
  });
});
