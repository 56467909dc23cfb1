import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { base32Decode, hotp, stepAt } from '../src/mfa/totp';
import { createTestDatabase, DATABASES, sql, TestDatabase } from './support/databases';
import { newAccount, signUp, waitUntil } from './support/fixtures';
import { sampleOf, samples } from './support/metrics';
import { TestSmtpServer } from './support/smtp';
import { freePort } from './support/standalone';
import { ADAPTERS, matrix, startTestApp, TestApp } from './support/test-app';

const AUTH = '/api/v1/auth';
const MAX_FAILURES = 3;
const PER_ADDRESS_PER_MINUTE = 30;

describe.each(matrix(DATABASES))('GET /metrics after real flows on %s with %s', (databaseKind, adapter) => {
  let database: TestDatabase;
  let smtp: TestSmtpServer;
  let t: TestApp;
  let offsetMs = 0;
  const http = () => t.http();
  const scrape = async () => {
    const res = await http().get('/metrics').expect(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    return res.text;
  };
  /** How much a sample moved while `work` ran. */
  async function delta(name: string, labels: Record<string, string>, work: () => Promise<unknown>): Promise<number> {
    const before = sampleOf(await scrape(), name, labels);
    await work();
    return sampleOf(await scrape(), name, labels) - before;
  }

  beforeAll(async () => {
    database = await createTestDatabase(databaseKind);
    smtp = await TestSmtpServer.start({ rejectRecipient: (address) => address.startsWith('nobody-home') });
    t = await startTestApp({
      adapter,
      databaseUrl: database.url,
      smtpUrl: smtp.url,
      env: {
        METRICS_ENABLED: 'true',
        SIGNIN_MAX_FAILURES: String(MAX_FAILURES),
        RATE_LIMIT_PER_MINUTE: String(PER_ADDRESS_PER_MINUTE),
        MAIL_MAX_ATTEMPTS: '2',
        PASSWORD_HASH_CONCURRENCY: '1',
        PASSWORD_HASH_QUEUE: '0',
      },
    });
  });

  afterAll(async () => {
    await t?.close();
    await smtp?.stop();
    await database?.drop();
  });

  it('counts each sign-in outcome once: success, wrong password, locked', async () => {
    const { account } = await signUp(http);
    const signin = (password: string) => http().post(`${AUTH}/signin`).send({ email: account.email, password });
    const before = await scrape();
    await signin(account.password).expect(200);
    const statuses: number[] = [];
    for (let attempt = 0; attempt < MAX_FAILURES + 2; attempt++) statuses.push((await signin('not the password at all')).status);
    const after = await scrape();
    const moved = (outcome: string) =>
      sampleOf(after, 'auth_signin_total', { step: 'password', outcome }) - sampleOf(before, 'auth_signin_total', { step: 'password', outcome });
    expect(statuses).toContain(429);
    expect(moved('success')).toBe(1);
    expect(moved('invalid_credentials')).toBe(statuses.filter((status) => status === 401).length);
    expect(moved('locked')).toBe(statuses.filter((status) => status === 429).length);
    expect(sampleOf(after, 'auth_rate_limited_total', { limiter: 'signin_failures' }) - sampleOf(before, 'auth_rate_limited_total', { limiter: 'signin_failures' })).toBe(
      statuses.filter((status) => status === 429).length,
    );
  });

  it('counts a sign-in that needs the second factor, and both outcomes of the second step', async () => {
    const { account, token } = await signUp(http);
    const setup = await http().post(`${AUTH}/mfa/totp/setup`).auth(token, { type: 'bearer' }).expect(200);
    const secret = base32Decode(setup.body.secret);
    const code = () => hotp(secret, stepAt(Date.now() + offsetMs));
    await http().post(`${AUTH}/mfa/totp/confirm`).auth(token, { type: 'bearer' }).send({ code: code() }).expect(200);
    const before = await scrape();
    const first = await http().post(`${AUTH}/signin`).send({ email: account.email, password: account.password }).expect(403);
    const wrong = code() === '000000' ? '111111' : '000000';
    await http().post(`${AUTH}/signin/mfa`).send({ mfa_token: first.body.mfa_token, code: wrong }).expect(401);
    // The code of the confirmation is spent: the next time step's.
    offsetMs += 30_000;
    t.advanceClock(30_000);
    await http().post(`${AUTH}/signin/mfa`).send({ mfa_token: first.body.mfa_token, code: code() }).expect(200);
    const after = await scrape();
    const moved = (step: string, outcome: string) => sampleOf(after, 'auth_signin_total', { step, outcome }) - sampleOf(before, 'auth_signin_total', { step, outcome });
    expect(moved('password', 'mfa_required')).toBe(1);
    expect(moved('mfa', 'invalid_code')).toBe(1);
    expect(moved('mfa', 'success')).toBe(1);
    expect(moved('password', 'success')).toBe(0);
  });

  it('counts refresh outcomes: rotated, within the grace window, invalid, and reuse of a spent token', async () => {
    const signup = await http().post(`${AUTH}/signup`).send(newAccount()).expect(201);
    const spent = signup.body.refresh_token as string;
    const refresh = (token: string) => http().post(`${AUTH}/refresh`).send({ refresh_token: token });
    const before = await scrape();
    await refresh(spent).expect(200);
    await refresh(spent).expect(200); // a second tab, at once
    await refresh(randomBytes(32).toString('base64url')).expect(401);
    offsetMs += 11_000;
    t.advanceClock(11_000); // past the 10 s grace: a stolen copy
    await refresh(spent).expect(401);
    const after = await scrape();
    const moved = (outcome: string) => sampleOf(after, 'auth_refresh_total', { outcome }) - sampleOf(before, 'auth_refresh_total', { outcome });
    expect({ rotated: moved('rotated'), within_grace: moved('within_grace'), invalid: moved('invalid'), reused: moved('reused') }).toEqual({
      rotated: 1,
      within_grace: 1,
      invalid: 1,
      reused: 1,
    });
  });

  it('counts every 503 of a full hashing queue, and shows the queue empty again after', async () => {
    const accounts: { email: string; password: string }[] = [];
    for (let account = 0; account < 6; account++) accounts.push((await signUp(http)).account);
    let statuses: number[] = [];
    const moved = await delta('auth_password_hashing_rejected_total', {}, async () => {
      const answers = await Promise.all(accounts.map((account) => http().post(`${AUTH}/signin`).send({ email: account.email, password: account.password })));
      statuses = answers.map((answer) => answer.status);
    });
    expect(statuses).toContain(503);
    expect(moved).toBe(statuses.filter((status) => status === 503).length);
    const text = await scrape();
    expect(sampleOf(text, 'auth_password_hashing_queue_depth')).toBe(0);
    expect(sampleOf(text, 'auth_password_hashing_in_flight')).toBe(0);
  });

  it('counts refusals of the per-address limit', async () => {
    let refused = 0;
    const moved = await delta('auth_rate_limited_total', { limiter: 'per_address' }, async () => {
      for (let request = 0; request <= PER_ADDRESS_PER_MINUTE; request++) {
        if ((await http().get(`${AUTH}/jwks`)).status === 429) refused++;
      }
    });
    expect(refused).toBeGreaterThan(0);
    expect(moved).toBe(refused);
  });

  it('shows the outbox: a message failing once is pending, after its last attempt dead, as the table says', async () => {
    const outboxCount = async (status: string) =>
      Number(((await sql(database, `SELECT COUNT(*) AS n FROM mail_outbox WHERE status = $1`, [status])) as { n: number | string }[])[0].n);
    const doomed = await signUp(http, { email: `nobody-home-${newAccount().email}` });
    const firstAttemptFailed = async () =>
      ((await sql(database, 'SELECT attempts, locked_until FROM mail_outbox WHERE user_id = $1', [doomed.userId])) as { attempts: number; locked_until: unknown }[])[0]
        ?.attempts === 1;
    await waitUntil('the first attempt has failed', firstAttemptFailed);
    const pending = await scrape();
    expect(sampleOf(pending, 'auth_mail_outbox_messages', { status: 'pending' })).toBe(await outboxCount('pending'));
    expect(sampleOf(pending, 'auth_mail_outbox_messages', { status: 'pending' })).toBeGreaterThanOrEqual(1);
    const deadBefore = sampleOf(pending, 'auth_mail_outbox_messages', { status: 'dead' });
    // Past any retry wait (at most 5 minutes).
    offsetMs += 301_000;
    t.advanceClock(301_000);
    await waitUntil('the message is dead', async () => (await outboxCount('dead')) === deadBefore + 1).catch(async (error) => {
      throw new Error(`${error.message}: ${JSON.stringify(await sql(database, 'SELECT * FROM mail_outbox WHERE user_id = $1', [doomed.userId]))}`);
    });
    const dead = await scrape();
    expect(sampleOf(dead, 'auth_mail_outbox_messages', { status: 'dead' })).toBe(deadBefore + 1);
    expect(sampleOf(dead, 'auth_mail_outbox_messages', { status: 'pending' })).toBe(await outboxCount('pending'));
  });

  it('times requests by route template and status, never by the path asked for', async () => {
    const { token } = await signUp(http);
    const ids = ['00000000-0000-4000-8000-000000000001', '00000000-0000-4000-8000-000000000002', '00000000-0000-4000-8000-000000000003'];
    const labels = { method: 'DELETE', route: '/api/v1/auth/sessions/:id', status_code: '404' };
    const moved = await delta('http_request_duration_seconds_count', labels, async () => {
      for (const id of ids) await http().delete(`${AUTH}/sessions/${id}`).auth(token, { type: 'bearer' }).expect(404);
    });
    expect(moved).toBe(ids.length);
    const unauthorized = await delta('http_request_duration_seconds_count', { method: 'GET', route: '/api/v1/auth/me', status_code: '401' }, () => http().get(`${AUTH}/me`).expect(401));
    expect(unauthorized).toBe(1);
    await http().get('/no/such/route/here').expect(404);
    const text = await scrape();
    const routes = new Set(samples(text, 'http_request_duration_seconds_count').map((sample) => sample.labels.route));
    expect([...routes].filter((route) => ids.some((id) => route.includes(id)) || route.includes('/no/such'))).toEqual([]);
    expect(routes).toContain('unmatched');
    expect(sampleOf(text, 'http_request_duration_seconds_bucket', { ...labels, le: '+Inf' })).toBeGreaterThanOrEqual(ids.length);
    // Node's own process metrics come along.
    expect(samples(text, 'process_cpu_user_seconds_total')).toHaveLength(1);
  });

  it('serves every metric the Grafana dashboard (ops/grafana-dashboard.json) and the README alerts ask for', async () => {
    const dashboard = readFileSync(join(__dirname, '..', 'ops', 'grafana-dashboard.json'), 'utf8');
    const readme = readFileSync(join(__dirname, '..', 'README.md'), 'utf8');
    const alerts = readme.slice(readme.indexOf('### Alerts'), readme.indexOf('\n## ', readme.indexOf('### Alerts')));
    const asked = new Set([...`${dashboard}\n${alerts}`.matchAll(/\b((?:http|auth|process|nodejs)_[a-z0-9_]+?)(?:_bucket|_count|_sum)?\{/g)].map((m) => m[1]));
    expect(asked.size).toBeGreaterThan(8);
    const text = await scrape();
    const served = new Set(text.split('\n').filter((line) => line.startsWith('# TYPE ')).map((line) => line.split(' ')[2]));
    expect([...asked].filter((name) => !served.has(name))).toEqual([]);
  });
});

describe.each(ADAPTERS)('where /metrics is served, with %s', (adapter) => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase(DATABASES[0]);
  });
  afterAll(async () => {
    await database?.drop();
  });

  it('is not served at all by default (404)', async () => {
    const t = await startTestApp({ adapter, databaseUrl: database.url });
    try {
      await t.http().get('/metrics').expect(404);
    } finally {
      await t.close();
    }
  });

  it('is served on METRICS_PORT alone, and not on the app port, with METRICS_PORT set', async () => {
    const port = await freePort();
    const t = await startTestApp({ adapter, databaseUrl: database.url, env: { METRICS_ENABLED: 'true', METRICS_PORT: String(port) } });
    try {
      await signUp(t.http);
      await t.http().get('/metrics').expect(404);
      const res = await fetch(`http://127.0.0.1:${port}/metrics`);
      expect(res.status).toBe(200);
      const text = await res.text();
      expect(sampleOf(text, 'http_request_duration_seconds_count', { method: 'POST', route: '/api/v1/auth/signup', status_code: '201' })).toBe(1);
      expect((await fetch(`http://127.0.0.1:${port}/other`)).status).toBe(404);
    } finally {
      await t.close();
    }
    // Closed with the app.
    await expect(fetch(`http://127.0.0.1:${port}/metrics`)).rejects.toThrow();
  });
});
