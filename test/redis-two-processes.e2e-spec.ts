import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Redis from 'ioredis';
import { createTestDatabase, DATABASES, TestDatabase } from './support/databases';
import { REDIS_MISSING, redisDatabaseUrl } from './support/redis';
import { RunningApp, startStandalone } from './support/standalone';

const REDIS_DB = 14;
const REDIS_URL = redisDatabaseUrl(REDIS_DB);

async function post(app: RunningApp, path: string, body: object, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${app.baseUrl}/api/v1/auth${path}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
}

const describeHere = DATABASES.includes('postgres') && !REDIS_MISSING ? describe : describe.skip;

/** Two separate OS processes of the built app on one PostgreSQL database and one Redis enforce one limit. */
describeHere('two app processes sharing Redis', () => {
  let database: TestDatabase;
  let cwd: string;
  let a: RunningApp;
  let b: RunningApp;

  beforeAll(async () => {
    database = await createTestDatabase('postgres');
    cwd = mkdtempSync(join(tmpdir(), 'auth-two-processes-'));
    const flush = new Redis(REDIS_URL);
    await flush.flushdb();
    await flush.quit();
    const env = {
      DATABASE_URL: database.url,
      REDIS_URL,
      JWT_SECRET: 'two-processes-secret-of-at-least-32-bytes',
      RATE_LIMIT_PER_MINUTE: '4',
      SIGNIN_MAX_FAILURES: '3',
    };
    a = await startStandalone(env, cwd);
    b = await startStandalone(env, cwd);
  });

  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    const flush = new Redis(REDIS_URL);
    await flush.flushdb();
    await flush.quit();
    if (cwd) rmSync(cwd, { recursive: true, force: true });
    await database?.drop();
  });

  it('count per-address requests and per-account failures together', async () => {
    const account = { email: 'shared@example.com', username: 'sharedlimits', password: 'an unrelated passphrase 77' };
    expect((await post(a, '/signup', account)).status).toBe(201);

    // Per account: 3 failures spread over both processes lock sign-in on both, right password included.
    // (Sign-in's per-address budget is 4 a minute: 3 failures + 1 locked attempt stay within it.)
    expect((await post(a, '/signin', { email: account.email, password: 'wrong one 1' })).status).toBe(401);
    expect((await post(b, '/signin', { email: account.email, password: 'wrong one 2' })).status).toBe(401);
    expect((await post(a, '/signin', { email: account.email, password: 'wrong one 3' })).status).toBe(401);
    const locked = await post(b, '/signin', { email: account.email, password: account.password });
    expect(locked.status).toBe(429);
    expect(Number(locked.headers.get('retry-after'))).toBeGreaterThan(0);

    // Per address: 4 forgot-password requests a minute in total, alternating between the processes, and
    // a spoofed X-Forwarded-For (no TRUST_PROXY) does not buy a fresh bucket.
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      const spoofed = { 'X-Forwarded-For': `203.0.113.${i + 1}` };
      statuses.push((await post(i % 2 === 0 ? a : b, '/forgot-password', { email: account.email }, spoofed)).status);
    }
    expect(statuses).toEqual([200, 200, 200, 200, 429, 429]);
  });
});
