import { createHash, randomInt } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { AddressInfo, createServer } from 'node:net';
import Redis from 'ioredis';
import { AuthErrors, AuthMessages } from '../src/common/auth.errors';
import { RedisConnection } from '../src/common/redis-connection';
import { createTestDatabase, DATABASES, TestDatabase } from './support/databases';
import { expectProblem, newAccount, signUp } from './support/fixtures';
import { TestSmtpServer, tokenFromMail } from './support/smtp';
import { REDIS_MISSING, redisDatabaseUrl } from './support/redis';
import { ADAPTERS, matrix, startTestApp, TestApp, useTestApp } from './support/test-app';

const AUTH = '/api/v1/auth';

interface HttpResult {
  status: number;
  headers: Record<string, string>;
  body: any;
}

/** Retry-After must be a whole number of seconds within [min, max]. */
function expectRetryAfter(res: HttpResult, min: number, max: number): number {
  const value = res.headers['retry-after'];
  expect(value).toMatch(/^\d+$/);
  const seconds = Number(value);
  expect(seconds).toBeGreaterThanOrEqual(min);
  expect(seconds).toBeLessThanOrEqual(max);
  return seconds;
}

/** The per-address 429 of the contract: problem details, fixed detail, Retry-After within the minute. */
function expectRateLimited(res: HttpResult): void {
  expectProblem(res, 429, AuthErrors.TOO_MANY_REQUESTS);
  expectRetryAfter(res, 1, 60);
}

/** The per-account 429: problem details, its own detail, Retry-After within the 15-minute window. */
function expectAccountLocked(res: HttpResult, minSeconds = 15 * 60 - 120): void {
  expectProblem(res, 429, AuthErrors.TOO_MANY_SIGNIN_FAILURES);
  expectRetryAfter(res, minSeconds, 15 * 60);
}

/**
 * A raw node HTTP request with JSON body, sent from `localAddress` (any 127.x.y.z works on Linux loopback),
 * so the server sees a genuinely different client address — not a header the client chose.
 */
function rawPost(port: number, path: string, body: unknown, localAddress: string): Promise<HttpResult> {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port,
        path,
        method: 'POST',
        localAddress,
        agent: false,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = text;
          try {
            parsed = text ? JSON.parse(text) : undefined;
          } catch {
            // not JSON: keep the text so the assertion shows it
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers as Record<string, string>, body: parsed });
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** A port on which nothing listens (bound, then released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Audit lines of one event with the client address the app saw (`ip=...`). */
function auditIps(t: TestApp, event: string): string[] {
  return t.logs.lines
    .filter((line) => line.includes(`event=${event} `))
    .map((line) => /ip=(\S+)/.exec(line)?.[1] ?? '?')
    .map((ip) => ip.replace(/^::ffff:/, ''));
}

describe.each(matrix(DATABASES))('per client address and route limits on %s with %s', (databaseKind, adapter) => {
  let database: TestDatabase;
  let smtp: TestSmtpServer;
  const apps: TestApp[] = [];

  async function start(env: Record<string, string>): Promise<TestApp> {
    const t = await startTestApp({ adapter, databaseUrl: database.url, smtpUrl: smtp.url, env });
    apps.push(t);
    return t;
  }

  beforeAll(async () => {
    database = await createTestDatabase(databaseKind);
    smtp = await TestSmtpServer.start();
  });

  afterEach(async () => {
    while (apps.length > 0) await apps.pop()!.close();
  });

  afterAll(async () => {
    await smtp?.stop();
    await database?.drop();
  });

  it('answers the 6th request to a route within a minute with a 429 problem and Retry-After, even for the right password', async () => {
    const t = await start({ RATE_LIMIT_PER_MINUTE: '5' });
    const { account } = await signUp(t.http); // another route: does not count against /signin

    for (let i = 0; i < 5; i++) {
      const res = await t.http().post(`${AUTH}/signin`).send({ email: `nobody${i}-${account.email}`, password: 'wrong password' });
      expectProblem(res, 401, AuthErrors.INVALID_CREDENTIALS);
    }
    const limited = await t.http().post(`${AUTH}/signin`).send({ email: account.email, password: account.password });
    expectRateLimited(limited);
    expect(limited.body).toEqual({ type: 'about:blank', title: 'Too Many Requests', status: 429, detail: AuthErrors.TOO_MANY_REQUESTS });
    expect(limited.body).not.toHaveProperty('access_token');
    expectRateLimited(await t.http().post(`${AUTH}/signin`).send({ email: account.email, password: account.password }));
  });

  it('counts each route on its own: with /signin exhausted, other routes still answer and have their own 5', async () => {
    const t = await start({ RATE_LIMIT_PER_MINUTE: '5' });
    const { account, token } = await signUp(t.http);
    for (let i = 0; i < 5; i++) {
      await t.http().post(`${AUTH}/signin`).send({ email: account.email, password: account.password }).expect(200);
    }
    expectRateLimited(await t.http().post(`${AUTH}/signin`).send({ email: account.email, password: account.password }));

    await t.http().get(`${AUTH}/me`).auth(token, { type: 'bearer' }).expect(200);
    for (let i = 0; i < 5; i++) {
      const res = await t.http().post(`${AUTH}/forgot-password`).send({ email: `nobody${i}@example.com` }).expect(200);
      expect(res.body).toEqual({ message: AuthMessages.RESET_EMAIL_SENT });
    }
    expectRateLimited(await t.http().post(`${AUTH}/forgot-password`).send({ email: 'nobody@example.com' }));
    // /signin is still limited, /reset-password has its own untouched budget.
    expectRateLimited(await t.http().post(`${AUTH}/signin`).send({ email: account.email, password: account.password }));
    expectProblem(await t.http().post(`${AUTH}/reset-password`).send({ token: 'made-up', new_password: 'long enough' }), 400, AuthErrors.INVALID_RESET_TOKEN);
  });

  it('RATE_LIMIT_PER_MINUTE=0 turns the per-address limit off', async () => {
    const t = await start({ RATE_LIMIT_PER_MINUTE: '0' });
    const statuses: number[] = [];
    for (let i = 0; i < 30; i++) {
      statuses.push((await t.http().post(`${AUTH}/forgot-password`).send({ email: `nobody${i}@example.com` })).status);
    }
    for (let i = 0; i < 10; i++) {
      statuses.push((await t.http().post(`${AUTH}/reset-password`).send({ token: `made-up-${i}`, new_password: 'long enough' })).status);
    }
    expect(statuses.filter((s) => s === 429)).toEqual([]);
    expect(statuses).toEqual([...Array(30).fill(200), ...Array(10).fill(400)]);
  });

  it('ignores X-Forwarded-For without TRUST_PROXY: a new spoofed address per request still hits 429', async () => {
    const t = await start({ RATE_LIMIT_PER_MINUTE: '5' });
    const statuses: number[] = [];
    for (let i = 1; i <= 5; i++) {
      const res = await t.http().post(`${AUTH}/forgot-password`).set('X-Forwarded-For', `198.51.100.${i}`).send({ email: `nobody${i}@example.com` });
      statuses.push(res.status);
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200]);
    const limited = await t.http().post(`${AUTH}/forgot-password`).set('X-Forwarded-For', '198.51.100.6').send({ email: 'nobody6@example.com' });
    expectRateLimited(limited);
    // The app saw the socket address, never the spoofed one.
    const ips = auditIps(t, 'password_reset_requested_unknown_email');
    expect(ips).toHaveLength(5);
    for (const ip of ips) expect(ip).toMatch(/^(127\.0\.0\.1|::1)$/);
  });

  /**
   * One trusted proxy in front of the app (supertest connects from loopback, standing in for the proxy).
   * Client A exhausts its budget; client B behind the same proxy still gets through; A cannot escape by
   * prepending made-up hops, because only the entry the trusted proxy appended counts.
   */
  async function trustedProxyPicksTheBucket(trustProxy: string): Promise<void> {
    const t = await start({ RATE_LIMIT_PER_MINUTE: '5', TRUST_PROXY: trustProxy });
    const forgot = (forwardedFor: string) =>
      t.http().post(`${AUTH}/forgot-password`).set('X-Forwarded-For', forwardedFor).send({ email: 'nobody@example.com' });

    for (let i = 0; i < 5; i++) await forgot('203.0.113.10').expect(200);
    expectRateLimited(await forgot('203.0.113.10'));

    await forgot('203.0.113.20').expect(200);
    expectRateLimited(await forgot('192.0.2.77, 203.0.113.10'));
    expectRateLimited(await forgot('192.0.2.78, 10.9.8.7, 203.0.113.10'));
    await forgot('203.0.113.10, 203.0.113.20').expect(200);

    const ips = auditIps(t, 'password_reset_requested_unknown_email');
    expect(ips).toEqual(['203.0.113.10', '203.0.113.10', '203.0.113.10', '203.0.113.10', '203.0.113.10', '203.0.113.20', '203.0.113.20']);
  }

  it('with TRUST_PROXY=1 (one hop) the X-Forwarded-For client address picks the bucket', async () => {
    await trustedProxyPicksTheBucket('1');
  });

  it('with TRUST_PROXY=loopback (an address list) the X-Forwarded-For client address picks the bucket', async () => {
    await trustedProxyPicksTheBucket('loopback');
  });

  it('GET /health/ready reports only the database when REDIS_URL is unset, and is never rate limited', async () => {
    const t = await start({ RATE_LIMIT_PER_MINUTE: '5' });
    for (let i = 0; i < 7; i++) {
      const res = await t.http().get('/health/ready').expect(200);
      expect(res.body).toEqual({ status: 'ok', checks: { database: 'up' } });
    }
  });
});

describe.each(matrix(DATABASES))('per-account sign-in failure limit on %s with %s', (databaseKind, adapter) => {
  const { t, smtp } = useTestApp(databaseKind, {
    adapter,
    env: { SIGNIN_MAX_FAILURES: '3', SIGNIN_FAILURE_WINDOW_MINUTES: '15', RATE_LIMIT_PER_MINUTE: '0' },
  });
  let port: number;

  const signin = (email: string, password: string) => t.http().post(`${AUTH}/signin`).send({ email, password });

  beforeAll(async () => {
    await t.app.listen(0, '127.0.0.1');
    port = (t.app.getHttpServer().address() as AddressInfo).port;
  });

  it('after 3 failures the 4th attempt answers 429 with Retry-After, even with the right password; other accounts are untouched', async () => {
    const { account } = await signUp(t.http);
    const other = await signUp(t.http);
    for (let i = 0; i < 3; i++) expectProblem(await signin(account.email, `wrong password ${i}`), 401, AuthErrors.INVALID_CREDENTIALS);

    const locked = await signin(account.email, account.password);
    expectAccountLocked(locked);
    expect(locked.body).not.toHaveProperty('access_token');
    expectAccountLocked(await signin(account.email, account.password));
    expectAccountLocked(await signin(account.email, 'wrong again'));

    await signin(other.account.email, other.account.password).expect(200);
  });

  it('counts the email however it is cased or padded', async () => {
    const { account } = await signUp(t.http);
    expectProblem(await signin(account.email.toUpperCase(), 'wrong password'), 401);
    expectProblem(await signin(`  ${account.email} `, 'wrong password'), 401);
    expectProblem(await signin(account.email[0].toUpperCase() + account.email.slice(1), 'wrong password'), 401);
    expectAccountLocked(await signin(account.email, account.password));
  });

  it('locks the account whatever client address the attempts come from', async () => {
    const { account } = await signUp(t.http);
    const path = `${AUTH}/signin`;
    for (const [i, address] of ['127.0.0.2', '127.0.0.3', '127.0.0.4'].entries()) {
      expectProblem(await rawPost(port, path, { email: account.email, password: `wrong password ${i}` }, address), 401, AuthErrors.INVALID_CREDENTIALS);
    }
    expectAccountLocked(await rawPost(port, path, { email: account.email, password: account.password }, '127.0.0.5'));
    expectAccountLocked(await rawPost(port, path, { email: account.email, password: account.password }, '127.0.0.6'));
    // The app really saw three different client addresses for the failures, and two more for the blocks.
    expect(auditIps(t, 'signin_failed').slice(-3)).toEqual(['127.0.0.2', '127.0.0.3', '127.0.0.4']);
    expect(auditIps(t, 'signin_blocked').slice(-2)).toEqual(['127.0.0.5', '127.0.0.6']);
  });

  it('answers an unknown email with the same 429 after the same number of failures (no enumeration)', async () => {
    const { account } = await signUp(t.http);
    const unknown = newAccount().email;
    const known: HttpResult[] = [];
    const ghost: HttpResult[] = [];
    for (let i = 0; i < 4; i++) {
      known.push(await signin(account.email, `wrong password ${i}`));
      ghost.push(await signin(unknown, `wrong password ${i}`));
    }
    expect(known.map((r) => r.status)).toEqual([401, 401, 401, 429]);
    expect(ghost.map((r) => r.status)).toEqual([401, 401, 401, 429]);
    for (let i = 0; i < 4; i++) expect(ghost[i].body).toEqual(known[i].body);
    expectAccountLocked(known[3]);
    expectAccountLocked(ghost[3]);
    expect(ghost[3].headers['content-type']).toBe(known[3].headers['content-type']);
  });

  it('a successful sign-in before the limit starts the count again', async () => {
    const { account } = await signUp(t.http);
    for (let round = 0; round < 3; round++) {
      expectProblem(await signin(account.email, 'wrong password a'), 401);
      expectProblem(await signin(account.email, 'wrong password b'), 401);
      await signin(account.email, account.password).expect(200);
    }
    // The limit itself still holds after the resets.
    for (let i = 0; i < 3; i++) expectProblem(await signin(account.email, 'wrong password c'), 401);
    expectAccountLocked(await signin(account.email, account.password));
  });

  it('forgot-password and reset-password still work while the account is locked, and the new password signs in at once', async () => {
    const { account } = await signUp(t.http);
    for (let i = 0; i < 3; i++) expectProblem(await signin(account.email, `attacker guess ${i}`), 401);
    expectAccountLocked(await signin(account.email, account.password));

    const forgot = await t.http().post(`${AUTH}/forgot-password`).send({ email: account.email }).expect(200);
    expect(forgot.body).toEqual({ message: AuthMessages.RESET_EMAIL_SENT });
    const mail = await smtp.waitFor(account.email, (m) => m.subject.includes('Reset'));
    // Still locked for the old password until the reset is done: asking for a reset changes nothing.
    expectAccountLocked(await signin(account.email, account.password));

    const newPassword = 'a fresh password after lockout';
    const reset = await t.http().post(`${AUTH}/reset-password`).send({ token: tokenFromMail(mail), new_password: newPassword }).expect(200);
    expect(reset.body).toEqual({ message: AuthMessages.PASSWORD_RESET });

    const signedIn = await signin(account.email, newPassword).expect(200);
    await t.http().get(`${AUTH}/me`).auth(signedIn.body.access_token, { type: 'bearer' }).expect(200);
    expectProblem(await signin(account.email, account.password), 401, AuthErrors.INVALID_CREDENTIALS);
  });

  // Moves the module clock, so it runs last in this block.
  it('after the window passes the right password signs in with 200', async () => {
    const { account } = await signUp(t.http);
    for (let i = 0; i < 3; i++) expectProblem(await signin(account.email, `wrong password ${i}`), 401);
    expectAccountLocked(await signin(account.email, account.password));

    t.advanceClock(14 * 60_000);
    // Not yet: still locked, and Retry-After counts down with the clock.
    const stillLocked = await signin(account.email, account.password);
    expectProblem(stillLocked, 429, AuthErrors.TOO_MANY_SIGNIN_FAILURES);
    expectRetryAfter(stillLocked, 1, 60);

    t.advanceClock(60_000 + 1000);
    const res = await signin(account.email, account.password).expect(200);
    expect(res.body).toMatchObject({ token_type: 'bearer', user: { email: account.email } });
  });
});

/** A Redis logical database (1..15) holding no keys, so this run neither reads nor clobbers another's. */
async function freshRedisDatabase(): Promise<{ url: string; client: Redis }> {
  const start = randomInt(1, 16);
  for (let i = 0; i < 15; i++) {
    const n = ((start - 1 + i) % 15) + 1;
    const url = redisDatabaseUrl(n);
    const client = new Redis(url, { maxRetriesPerRequest: 1 });
    if ((await client.dbsize()) === 0) return { url, client };
    await client.quit();
  }
  throw new Error('no empty Redis logical database among 1..15');
}

const describeRedis = DATABASES.includes('postgres') && !REDIS_MISSING ? describe : describe.skip;

describeRedis.each(ADAPTERS)('limits shared through Redis across two instances on postgres with %s', (adapter) => {
  let database: TestDatabase;
  let smtp: TestSmtpServer;
  let redis: { url: string; client: Redis };
  let a: TestApp;
  let b: TestApp;
  let clientCounter = 0;

  /** A client address of its own for each use, so tests sharing the Redis database never share a bucket. */
  const nextClient = () => {
    clientCounter += 1;
    return `198.18.${Math.floor(clientCounter / 250)}.${(clientCounter % 250) + 1}`;
  };
  const signin = (t: TestApp, email: string, password: string) =>
    t.http().post(`${AUTH}/signin`).set('X-Forwarded-For', nextClient()).send({ email, password });

  beforeAll(async () => {
    redis = await freshRedisDatabase();
    database = await createTestDatabase('postgres');
    smtp = await TestSmtpServer.start();
    const env = {
      REDIS_URL: redis.url,
      RATE_LIMIT_PER_MINUTE: '5',
      SIGNIN_MAX_FAILURES: '3',
      SIGNIN_FAILURE_WINDOW_MINUTES: '15',
      // An address list rather than a hop count: Fastify ignores a hop count (see the bug noted above).
      TRUST_PROXY: 'loopback',
    };
    a = await startTestApp({ adapter, databaseUrl: database.url, smtpUrl: smtp.url, env });
    b = await startTestApp({ adapter, databaseUrl: database.url, smtpUrl: smtp.url, env });
  });

  afterAll(async () => {
    await a?.close();
    await b?.close();
    if (redis) {
      await redis.client.flushdb(); // our own, previously empty, logical database
      await redis.client.quit();
    }
    await smtp?.stop();
    await database?.drop();
  });

  it('GET /health/ready reports database and redis up on both instances', async () => {
    for (const t of [a, b]) {
      const res = await t.http().get('/health/ready').expect(200);
      expect(res.body).toEqual({ status: 'ok', checks: { database: 'up', redis: 'up' } });
    }
  });

  it('shares the per-address limit: requests alternating between instances hit 429 after 5 in total', async () => {
    const client = nextClient();
    const forgot = (t: TestApp) =>
      t.http().post(`${AUTH}/forgot-password`).set('X-Forwarded-For', client).send({ email: 'nobody@example.com' });

    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await forgot(i % 2 === 0 ? a : b)).status);
    expect(statuses).toEqual([200, 200, 200, 200, 200]);
    expectRateLimited(await forgot(b));
    expectRateLimited(await forgot(a));
    // Still per address: another client goes through on either instance.
    const other = nextClient();
    await b.http().post(`${AUTH}/forgot-password`).set('X-Forwarded-For', other).send({ email: 'nobody@example.com' }).expect(200);
    // The counters live in Redis, not in either process.
    expect(await redis.client.dbsize()).toBeGreaterThan(0);
  });

  it('shares the per-account limit: failures on instance A lock sign-in on instance B', async () => {
    const { account } = await signUp(a.http);
    const c = await signUp(b.http);
    for (let i = 0; i < 3; i++) expectProblem(await signin(a, account.email, `wrong password ${i}`), 401, AuthErrors.INVALID_CREDENTIALS);

    expectAccountLocked(await signin(b, account.email, account.password));
    expectAccountLocked(await signin(a, account.email, account.password));
    await signin(b, c.account.email, c.account.password).expect(200);

    // What is stored identifies neither the account nor its email.
    const keys = await redis.client.keys('*');
    expect(keys.length).toBeGreaterThan(0);
    for (const key of keys) {
      expect(key).not.toContain(account.email);
      expect(key).not.toContain('@');
    }
    const digest = createHash('sha256').update(account.email).digest('hex');
    expect(keys.filter((key) => key.includes(digest))).toHaveLength(1);
  });

  it('spreads failures over both instances and unknown emails alike', async () => {
    const unknown = newAccount().email;
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await signin(i % 2 === 0 ? a : b, unknown, 'wrong password')).status);
    expect(statuses).toEqual([401, 401, 401, 429]);
  });

  it('a successful sign-in on one instance clears the count kept for the other', async () => {
    const { account } = await signUp(a.http);
    for (let round = 0; round < 2; round++) {
      expectProblem(await signin(a, account.email, 'wrong password a'), 401);
      expectProblem(await signin(a, account.email, 'wrong password b'), 401);
      await signin(b, account.email, account.password).expect(200);
    }
  });

  it('a reset through one instance unlocks sign-in on the other', async () => {
    const { account } = await signUp(a.http);
    for (let i = 0; i < 3; i++) expectProblem(await signin(a, account.email, `wrong password ${i}`), 401);
    expectAccountLocked(await signin(b, account.email, account.password));

    await b.http().post(`${AUTH}/forgot-password`).set('X-Forwarded-For', nextClient()).send({ email: account.email }).expect(200);
    const mail = await smtp.waitFor(account.email, (m) => m.subject.includes('Reset'));
    const newPassword = 'a fresh password via redis';
    await a.http().post(`${AUTH}/reset-password`).set('X-Forwarded-For', nextClient()).send({ token: tokenFromMail(mail), new_password: newPassword }).expect(200);
    await signin(b, account.email, newPassword).expect(200);
  });

  it('GET /health/ready answers 503 when the configured Redis does not answer', async () => {
    const port = await closedPort();
    const t = await startTestApp({ adapter, databaseUrl: database.url, smtpUrl: smtp.url, env: { REDIS_URL: `redis://127.0.0.1:${port}` } });
    try {
      expect(t.app.get(RedisConnection).client).not.toBeNull();
      const res = await t.http().get('/health/ready');
      expectProblem(res, 503);
      expect(res.body.detail).toContain('redis');
      expect(res.body.detail).not.toContain('database');
    } finally {
      await t.close();
    }
  });
});

describe.each(matrix(DATABASES))('per-account limit on mail-sending routes on %s with %s', (databaseKind, adapter) => {
  const { t, smtp } = useTestApp(databaseKind, { adapter, env: { MAIL_REQUESTS_PER_ACCOUNT_PER_HOUR: '4' } });

  it('answers 429 past the limit with the same body for a known and an unknown email', async () => {
    const account = newAccount();
    await t.http().post('/api/v1/auth/signup').send(account).expect(201);
    const bodies: Record<string, unknown>[] = [];
    for (const email of [account.email, `nobody-${account.email}`]) {
      for (let i = 0; i < 4; i++) {
        await t.http().post('/api/v1/auth/forgot-password').send({ email: i % 2 ? email.toUpperCase() : email }).expect(200);
      }
      const limited = await t.http().post('/api/v1/auth/forgot-password').send({ email });
      expect(limited.status).toBe(429);
      expect(limited.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(Number(limited.headers['retry-after'])).toBeGreaterThan(3000);
      expect(limited.headers['ratelimit-limit']).toBe('4');
      expect(limited.headers['ratelimit-remaining']).toBe('0');
      bodies.push(limited.body);
    }
    expect(bodies[0]).toEqual(bodies[1]);
    expect(bodies[0]).toMatchObject({ status: 429, detail: 'Too many requests for this email address, try again later' });
    // Counted per route: resend-verification still has its own budget for the same address.
    await t.http().post('/api/v1/auth/resend-verification').send({ email: account.email }).expect(200);
    // The mail cap (3 reset mails an hour) stopped the mail itself earlier, silently.
    await t.drainMail();
    expect(smtp.to(account.email).filter((m) => /reset/i.test(m.subject))).toHaveLength(3);
  });

  it('opens again when the hour has passed', async () => {
    const email = `later-${newAccount().email}`;
    for (let i = 0; i < 4; i++) await t.http().post('/api/v1/auth/forgot-password').send({ email }).expect(200);
    await t.http().post('/api/v1/auth/forgot-password').send({ email }).expect(429);
    t.advanceClock(3_600_000 + 1000);
    await t.http().post('/api/v1/auth/forgot-password').send({ email }).expect(200);
  });
});
