import { isLoopbackHost, resolveOidcConfig } from './oidc-config';

const options = {
  providers: [{ name: 'keycloak', issuer: 'https://sso.example.com/realms/main', clientId: 'id', clientSecret: 'secret' }],
  publicUrl: 'https://auth.example.com/',
  redirectUrls: ['https://app.example.com/done'],
};

describe(resolveOidcConfig.name, () => {
  it('is null without providers', () => {
    expect(resolveOidcConfig(undefined)).toBeNull();
    expect(resolveOidcConfig({ ...options, providers: [] })).toBeNull();
  });

  it('applies the defaults: scopes, retry, timeout; no trailing slash on publicUrl', () => {
    const config = resolveOidcConfig(options)!;
    expect(config.providers.get('keycloak')?.scopes).toEqual(['openid', 'email', 'profile']);
    expect(config.publicUrl).toBe('https://auth.example.com');
    expect(config).toMatchObject({ discoveryRetrySeconds: 30, requestTimeoutSeconds: 5 });
    expect(resolveOidcConfig({ ...options, providers: [{ ...options.providers[0], scopes: ['email'] }] })!.providers.get('keycloak')?.scopes).toEqual(['openid', 'email']);
  });

  it.each([
    [{ providers: [{ ...options.providers[0], issuer: 'http://sso.example.com' }] }, 'must use https'],
    [{ providers: [{ ...options.providers[0], name: 'Key Cloak' }] }, 'name must be'],
    [{ providers: [options.providers[0], options.providers[0]] }, 'given twice'],
    [{ providers: [{ ...options.providers[0], clientSecret: '' }] }, 'clientSecret is required'],
    [{ redirectUrls: [] }, 'redirectUrls must list'],
    [{ publicUrl: 'https://auth.example.com/?x=1' }, 'no query'],
    [{ discoveryRetrySeconds: 0 }, 'discoveryRetrySeconds'],
  ])('refuses %o', (change, message) => {
    expect(() => resolveOidcConfig({ ...options, ...change })).toThrow(message);
  });

  it('knows loopback hosts', () => {
    expect(['localhost', '127.0.0.1', '127.8.9.10', '[::1]'].map(isLoopbackHost)).toEqual([true, true, true, true]);
    expect(['example.com', '10.0.0.1', '128.0.0.1', 'localhost.example.com'].map(isLoopbackHost)).toEqual([false, false, false, false]);
  });
});
