import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestDatabase, DATABASES, sql, TestDatabase } from './support/databases';
import { newAccount, waitUntil } from './support/fixtures';
import { sampleLiveness } from './support/liveness';
import { jsonRequest, sendRaw } from './support/raw-http';
import { TestSmtpServer } from './support/smtp';
import { RunningApp, startStandalone } from './support/standalone';
import { TcpProxy } from './support/tcp-proxy';
import { TEST_JWT_SECRET } from './support/test-app';

const AUTH = '/api/v1/auth';
/**
 * Every request, during an outage too, answers within this. What the app waits at most: 2 s for a
 * connection (connecting, or a free one of the pool) or 2 s for a query's answer, once per request
 * (src/app/config/database.ts); the rest is margin for a loaded machine.
 */
const ANSWER_BOUND_MS = 5_000;
/** Generous on a shared 2-core machine: what is measured is reported, this only catches a stuck process. */
const RECOVERY_BOUND_MS = 15_000;
const CUT_MS = 3_000;
const MAIL_BOUND_MS = 90_000;
const CYCLES = 3;

interface Outcome {
  route: string;
  status: number;
  ms: number;
  email?: string;
  body: string;
}

const run = DATABASES.includes('postgres') ? describe : describe.skip;

/**
 * The built server on PostgreSQL through a TCP proxy the test cuts, in two ways (refused: the database
 * went away; black hole: it went silent mid-conversation), three times each, while a writer keeps
 * signing up and a batch of every kind of database work is sent during each cut. SQLite is a file in
 * the process and has no such fault.
 */
run('database faults: PostgreSQL behind a proxy that is cut and restored', () => {
  let database: TestDatabase;
  let proxy: TcpProxy;
  let smtp: TestSmtpServer;
  let server: RunningApp;
  let workdir: string;
  let token: string;
  let refreshToken: string;

  const request = async (route: string, method: string, path: string, body?: object, bearer?: string): Promise<Outcome> => {
    const sent = body ? jsonRequest(method, path, body, bearer) : { method, path, headers: bearer ? { authorization: `Bearer ${bearer}` } : {} };
    const started = Date.now();
    try {
      const res = await sendRaw(server.baseUrl, sent, 30_000);
      return { route, status: res.status, ms: res.ms, body: res.text };
    } catch (error) {
      return { route, status: 0, ms: Date.now() - started, body: String(error) };
    }
  };

  const signup = async (): Promise<Outcome> => {
    const account = newAccount();
    return { ...(await request('signup', 'POST', `${AUTH}/signup`, account)), email: account.email };
  };

  /** One of each kind of database work: reads, a guarded read, writes, transactions. */
  const mixedBatch = (): Promise<Outcome>[] => [
    signup(),
    signup(),
    request('signin', 'POST', `${AUTH}/signin`, { email: newAccount().email, password: 'whatever password' }),
    request('forgot-password', 'POST', `${AUTH}/forgot-password`, { email: newAccount().email }),
    request('verify-email', 'POST', `${AUTH}/verify-email`, { token: 'x'.repeat(43) }),
    request('refresh', 'POST', `${AUTH}/refresh`, { refresh_token: refreshToken }),
    request('sessions', 'GET', `${AUTH}/sessions`, undefined, token),
    request('me', 'GET', `${AUTH}/me`, undefined, token),
    request('ready', 'GET', '/health/ready'),
    ...Array.from({ length: 6 }, () => signup()),
  ];

  beforeAll(async () => {
    database = await createTestDatabase('postgres');
    const url = new URL(database.url);
    proxy = await TcpProxy.start({ host: url.hostname, port: Number(url.port || 5432) });
    url.port = String(proxy.port);
    smtp = await TestSmtpServer.start();
    workdir = mkdtempSync(join(tmpdir(), 'auth-db-faults-'));
    server = await startStandalone({ DATABASE_URL: url.toString(), SMTP_URL: smtp.url, JWT_SECRET: TEST_JWT_SECRET, RATE_LIMIT_PER_MINUTE: '0' }, workdir);
    const first = await signup();
    const body = JSON.parse(first.body) as { access_token: string; refresh_token: string };
    token = body.access_token;
    refreshToken = body.refresh_token;
  });

  afterAll(async () => {
    await server?.stop();
    await proxy?.stop();
    await smtp?.stop();
    await database?.drop();
    if (workdir) rmSync(workdir, { recursive: true, force: true });
  });

  it.each(['refuse', 'blackHole'] as const)('%s: answers 503 within the bound while cut, serves again after restore, loses nothing acknowledged', async (kind) => {
    const outcomes: Outcome[] = [];
    const recoveries: number[] = [];
    const liveness = sampleLiveness(server.baseUrl);
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      // A writer keeps signing up across the cut and the restore.
      let writing = true;
      const writer = (async () => {
        while (writing) {
          outcomes.push(await signup());
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      })();
      await new Promise((resolve) => setTimeout(resolve, 300));
      await proxy[kind]();
      const cutAt = Date.now();
      outcomes.push(...(await Promise.all(mixedBatch())));
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, CUT_MS - (Date.now() - cutAt))));
      outcomes.push(...(await Promise.all(mixedBatch())));
      await proxy.restore();
      const restoredAt = Date.now();
      for (;;) {
        const ready = await request('ready', 'GET', '/health/ready');
        const probe = await signup();
        outcomes.push(ready, probe);
        if (ready.status === 200 && probe.status === 201) break;
        if (Date.now() - restoredAt > RECOVERY_BOUND_MS) throw new Error(`not serving ${RECOVERY_BOUND_MS} ms after the restore: ${probe.status} ${probe.body}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      recoveries.push(Date.now() - restoredAt);
      writing = false;
      await writer;
    }
    const live = await liveness.stop();

    const byStatus = new Map<string, number>();
    for (const o of outcomes) byStatus.set(`${o.route} ${o.status}`, (byStatus.get(`${o.route} ${o.status}`) ?? 0) + 1);
    const slowest = Math.max(...outcomes.map((o) => o.ms));
    console.log(
      `${kind}: ${CYCLES} cuts of ${CUT_MS} ms, ${outcomes.length} requests, slowest answer ${Math.round(slowest)} ms, ` +
        `recovered after ${recoveries.join(', ')} ms; /health/live max ${live.maxMs} ms, ${live.failed} failed\n` +
        [...byStatus.entries()].sort().map(([k, n]) => `${k}: ${n}`).join(', '),
    );

    // Every answer came in time and was a success or a 503 problem, never a hang, a 500 or a reset.
    expect(outcomes.filter((o) => o.ms > ANSWER_BOUND_MS)).toEqual([]);
    expect(outcomes.filter((o) => o.status === 0 || (o.status >= 500 && o.status !== 503))).toEqual([]);

    // Nothing acknowledged is lost, nothing is half written.
    const acknowledged = outcomes.filter((o) => o.route === 'signup' && o.status === 201).map((o) => o.email!);
    const rows = (await sql(database, 'SELECT email FROM users')) as { email: string }[];
    const stored = new Set(rows.map((r) => r.email));
    expect(acknowledged.filter((email) => !stored.has(email))).toEqual([]);
    const orphans = await sql(
      database,
      `SELECT u.email FROM users u WHERE NOT EXISTS (SELECT 1 FROM mail_outbox m WHERE m.user_id = u.id AND m.kind = 'welcome')
        OR NOT EXISTS (SELECT 1 FROM user_sessions s WHERE s.user_id = u.id)`,
    );
    expect(orphans).toEqual([]);
    expect(live.failed).toBe(0);

    // The same process throughout, serving the sessions it had before the cuts.
    expect(server.output().match(/listening on port/g)).toHaveLength(1);
    expect((await request('me', 'GET', `${AUTH}/me`, undefined, token)).status).toBe(200);
    // The welcome mail of every acknowledged sign-up goes out once the database is back. A message the
    // worker had claimed when the cut came could record no outcome (its token is minted, and its outcome
    // written, in the database): it waits for its claim to run out (60 s, CLAIM_LEASE_MS) and goes then.
    const restoredLast = Date.now();
    await waitUntil('every acknowledged sign-up has its welcome mail', () => acknowledged.every((email) => smtp.to(email).length > 0), MAIL_BOUND_MS);
    console.log(`${kind}: ${acknowledged.length} acknowledged sign-ups, every welcome out ${Date.now() - restoredLast} ms after the checks`);
  }, 240_000);
});
