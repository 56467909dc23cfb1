import { OidcEnvError, oidcFromEnv } from './oidc-env';

const google = {
  OIDC_PROVIDERS: 'google',
  OIDC_GOOGLE_ISSUER: 'https://accounts.google.com',
  OIDC_GOOGLE_CLIENT_ID: 'id',
  OIDC_GOOGLE_CLIENT_SECRET: 'secret',
  OIDC_REDIRECT_URLS: 'https://app.example.com/auth/callback, https://app.example.com/settings',
};

describe(oidcFromEnv.name, () => {
  it('is undefined without OIDC_PROVIDERS', () => {
    expect(oidcFromEnv({})).toBeUndefined();
  });

  it('maps each provider and the redirect list onto the options', () => {
    expect(oidcFromEnv({ ...google, PUBLIC_URL: 'https://auth.example.com/base', OIDC_GOOGLE_SCOPES: 'openid email' })).toEqual({
      providers: [{ name: 'google', issuer: 'https://accounts.google.com', clientId: 'id', clientSecret: 'secret', scopes: ['openid', 'email'] }],
      publicUrl: 'https://auth.example.com/base',
      redirectUrls: ['https://app.example.com/auth/callback', 'https://app.example.com/settings'],
    });
  });

  it.each([
    [{ OIDC_GOOGLE_ISSUER: undefined }, 'OIDC_GOOGLE_ISSUER is required'],
    [{ OIDC_GOOGLE_CLIENT_SECRET: '' }, 'OIDC_GOOGLE_CLIENT_SECRET is required'],
    [{ OIDC_GOOGLE_ISSUER: 'http://accounts.google.com' }, 'OIDC_GOOGLE_ISSUER must use https'],
    [{ OIDC_GOOGLE_ISSUER: 'accounts.google.com' }, 'OIDC_GOOGLE_ISSUER must be an http(s) URL'],
    [{ OIDC_PROVIDERS: 'goo-gle' }, 'OIDC_PROVIDERS must list names'],
    [{ OIDC_PROVIDERS: 'google,google' }, 'OIDC_PROVIDERS lists "google" twice'],
    [{ OIDC_REDIRECT_URLS: '' }, 'OIDC_REDIRECT_URLS is required'],
    [{ OIDC_REDIRECT_URLS: 'https://app.example.com/#x' }, 'OIDC_REDIRECT_URLS entries must have no fragment'],
    [{ PUBLIC_URL: 'ftp://auth.example.com' }, 'PUBLIC_URL must be an http(s) URL'],
  ])('stops start-up on a bad setting (%o)', (change, message) => {
    expect(() => oidcFromEnv({ ...google, ...change })).toThrow(OidcEnvError);
    expect(() => oidcFromEnv({ ...google, ...change })).toThrow(message);
  });

  it('accepts a plain-http issuer on a loopback address', () => {
    expect(oidcFromEnv({ ...google, OIDC_GOOGLE_ISSUER: 'http://127.0.0.1:8080' })?.providers[0].issuer).toBe('http://127.0.0.1:8080');
  });
});
