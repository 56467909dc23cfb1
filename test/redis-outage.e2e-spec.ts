import { ChildProcess, spawn } from 'node:child_process';
import { createTestDatabase, DATABASES, TestDatabase } from './support/databases';
import { signUp } from './support/fixtures';
import { TestSmtpServer } from './support/smtp';
import { REDIS_SERVER_BIN, REDIS_SERVER_MISSING } from './support/redis';
import { freePort } from './support/standalone';
import { ADAPTERS, startTestApp, TestApp } from './support/test-app';

const AUTH = '/api/v1/auth';

/** A Redis of this test's own, so stopping it disturbs no other suite. */
async function startRedis(port: number): Promise<ChildProcess> {
  const redis = spawn(REDIS_SERVER_BIN, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    let output = '';
    redis.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('Ready to accept connections')) resolve();
    });
    redis.once('exit', (code) => reject(new Error(`redis-server exited with ${code}: ${output}`)));
  });
  return redis;
}

async function stopRedis(redis: ChildProcess): Promise<void> {
  if (redis.exitCode !== null) return;
  const exited = new Promise((resolve) => redis.once('exit', resolve));
  redis.kill('SIGKILL');
  await exited;
}

async function until(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Needs PostgreSQL and a redis-server binary (it runs a Redis of its own), not the shared Redis. */
const describeHere = DATABASES.includes('postgres') && !REDIS_SERVER_MISSING ? describe : describe.skip;

/**
 * Redis stopped mid-run: the service keeps answering (limits fail open), says so once in the log and in
 * /health/ready, and enforces the shared limits again once Redis is back, without a restart.
 */
describeHere.each(ADAPTERS)('Redis outage with %s on PostgreSQL', (adapter) => {
  let database: TestDatabase;
  let smtp: TestSmtpServer;
  let redis: ChildProcess;
  let port: number;
  let t: TestApp;

  beforeAll(async () => {
    database = await createTestDatabase('postgres');
    smtp = await TestSmtpServer.start();
    port = await freePort();
    redis = await startRedis(port);
    t = await startTestApp({
      adapter,
      databaseUrl: database.url,
      smtpUrl: smtp.url,
      env: { REDIS_URL: `redis://127.0.0.1:${port}`, RATE_LIMIT_PER_MINUTE: '3', SIGNIN_MAX_FAILURES: '2' },
    });
  });

  afterAll(async () => {
    await t?.close();
    if (redis) await stopRedis(redis);
    await smtp?.stop();
    await database?.drop();
  });

  it('keeps answering while Redis is down, reports it, and limits again once it is back', async () => {
    const ready = () => t.http().get('/health/ready');
    expect((await ready()).body).toEqual({ status: 'ok', checks: { database: 'up', redis: 'up' } });
    const { account } = await signUp(t.http);

    await stopRedis(redis);
    await until(async () => (await ready()).status === 503);
    expect((await ready()).body.detail).toContain('redis');

    // Per-address limit (3/min) and per-account limit (2 failures) are both off while Redis is away.
    for (let i = 0; i < 5; i++) {
      await t.http().post(`${AUTH}/forgot-password`).send({ email: account.email }).expect(200);
    }
    for (let i = 0; i < 3; i++) {
      const res = await t.http().post(`${AUTH}/signin`).send({ email: account.email, password: 'wrong password' });
      expect(res.status).toBe(401);
    }
    await t.http().post(`${AUTH}/signin`).send({ email: account.email, password: account.password }).expect(200);
    const outageLines = t.logs.lines.filter((line) => line.includes('Redis is unreachable'));
    expect(outageLines).toHaveLength(1);
    expect(outageLines[0]).toContain('rate limits are not enforced');

    redis = await startRedis(port);
    await until(async () => (await ready()).status === 200);
    await until(async () => t.logs.lines.some((line) => line.includes('Redis is reachable again')));

    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) {
      statuses.push((await t.http().post(`${AUTH}/forgot-password`).send({ email: account.email })).status);
    }
    expect(statuses).toEqual([200, 200, 200, 429]);
  });
});
