import { newAccount } from './support/fixtures';
import { ADAPTERS, useTestApp } from './support/test-app';

const ALLOWED = 'https://app.example.test';

/** Security headers, the CORS allow-list and the IETF RateLimit fields of the standalone app. */
describe.each(ADAPTERS)('HTTP hardening with %s', (adapter) => {
  const { t } = useTestApp('sqlite', { adapter, env: { CORS_ORIGINS: `${ALLOWED},http://localhost:5173`, RATE_LIMIT_PER_MINUTE: '100' } });

  it('sends the usual security headers, on success and on errors', async () => {
    for (const res of [await t.http().get('/health/live'), await t.http().get('/api/v1/auth/me')]) {
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(res.headers['x-frame-options']).toBe('SAMEORIGIN');
      expect(res.headers['strict-transport-security']).toMatch(/max-age=\d+/);
      expect(res.headers['content-security-policy']).toContain("default-src 'self'");
      expect(res.headers).not.toHaveProperty('x-powered-by');
    }
  });

  it('answers a preflight from an allowed origin, and gives nothing to another origin', async () => {
    const allowed = await t.http().options('/api/v1/auth/signin')
      .set('Origin', ALLOWED).set('Access-Control-Request-Method', 'POST').set('Access-Control-Request-Headers', 'content-type');
    expect(allowed.status).toBeLessThan(300);
    expect(allowed.headers['access-control-allow-origin']).toBe(ALLOWED);
    expect(allowed.headers['access-control-allow-credentials']).toBeUndefined();

    const other = await t.http().options('/api/v1/auth/signin')
      .set('Origin', 'https://evil.example').set('Access-Control-Request-Method', 'POST');
    expect(other.headers['access-control-allow-origin']).toBeUndefined();

    const simple = await t.http().post('/api/v1/auth/signup').set('Origin', ALLOWED).send(newAccount());
    expect(simple.status).toBe(201);
    expect(simple.headers['access-control-allow-origin']).toBe(ALLOWED);
  });

  it('tells clients their budget with the IETF RateLimit fields', async () => {
    const res = await t.http().post('/api/v1/auth/forgot-password').send({ email: 'someone@example.com' }).expect(200);
    expect(res.headers['ratelimit-limit']).toBe('100');
    expect(Number(res.headers['ratelimit-remaining'])).toBeLessThan(100);
    expect(Number(res.headers['ratelimit-reset'])).toBeGreaterThan(0);
    expect(res.headers).not.toHaveProperty('x-ratelimit-limit');
  });
});
