import { newAccount, signUp } from './support/fixtures';
import { ADAPTERS, useTestApp } from './support/test-app';

/** A sign-in flood beyond the hashing queue is refused at once with 503, and cheap routes keep answering. */
describe.each(ADAPTERS)('hashing flood with %s', (adapter) => {
  const { t } = useTestApp('sqlite', { adapter, env: { PASSWORD_HASH_CONCURRENCY: '1', PASSWORD_HASH_QUEUE: '2' } });

  it('answers 503 with Retry-After beyond the queue, never 500, and the rest normally', async () => {
    const { account } = await signUp(t.http);
    const flood = await Promise.all(
      Array.from({ length: 12 }, () => t.http().post('/api/v1/auth/signin').send({ email: account.email, password: account.password })),
    );
    const statuses = flood.map((res) => res.status);
    expect(statuses.filter((s) => s === 200).length).toBeGreaterThanOrEqual(3); // 1 running + 2 queued at least
    expect(statuses.filter((s) => s === 503).length).toBeGreaterThan(0);
    expect(statuses.every((s) => s === 200 || s === 503)).toBe(true);
    const busy = flood.find((res) => res.status === 503)!;
    expect(busy.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(busy.headers['retry-after']).toBe('1');
    expect(busy.body).toMatchObject({ status: 503, detail: 'The service is busy, try again in a moment' });
  });

  it('keeps cheap routes answering while hashing is saturated', async () => {
    const flood = Promise.all(
      Array.from({ length: 6 }, () => t.http().post('/api/v1/auth/signup').send(newAccount())),
    );
    const started = Date.now();
    await t.http().get('/health/live').expect(200);
    expect(Date.now() - started).toBeLessThan(1000);
    const statuses = (await flood).map((res) => res.status);
    expect(statuses.every((s) => s === 201 || s === 503)).toBe(true);
  });
});
