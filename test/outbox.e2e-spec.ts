import { AuthMessages } from '../src/common/auth.errors';
import { Housekeeping } from '../src/module/housekeeping';
import { createTestDatabase, DATABASES, DatabaseKind, sql, TestDatabase } from './support/databases';
import { newAccount, NewAccount, signUp, SignedUp, waitUntil } from './support/fixtures';
import { ReceivedMail, startSlowSmtp, TestSmtpServer } from './support/smtp';
import { startTestApp, TestApp, TestAppOptions } from './support/test-app';

const AUTH = '/api/v1/auth';
/** The retry schedule of the defaults: 5 s doubling, capped at 5 minutes, 10 attempts in all. */
const DEFAULT_RETRY_DELAYS_MS = [5_000, 10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000, 300_000];
/** A claim's lease (2 x the 30 s send timeout), after which another worker may take the message. */
const CLAIM_LEASE_MS = 60_000;

interface OutboxRow {
  id: number;
  kind: string;
  user_id: number;
  status: string;
  attempts: number;
  last_error: string | null;
  locked: boolean;
}

async function outbox(database: TestDatabase, where = '1 = 1', params: unknown[] = []): Promise<OutboxRow[]> {
  const rows = (await sql(
    database,
    `SELECT id, kind, user_id, status, attempts, last_error, locked_until FROM mail_outbox WHERE ${where} ORDER BY id`,
    params,
  )) as (Omit<OutboxRow, 'locked'> & { locked_until: unknown })[];
  return rows.map(({ locked_until, ...row }) => ({ ...row, id: Number(row.id), user_id: Number(row.user_id), locked: locked_until !== null }));
}

/** A time as a literal each database stores for the entity's `Date` columns (SQLite: UTC text). */
function sqlTime(kind: DatabaseKind, date: Date): string {
  return kind === 'postgres' ? date.toISOString() : date.toISOString().replace('T', ' ').replace('Z', '');
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Subjects of the mails an address got, sorted, so a test can say "exactly these, once each". */
function subjectsTo(smtp: TestSmtpServer, address: string): string[] {
  return smtp
    .to(address)
    .map((mail) => mail.subject)
    .sort();
}

const WELCOME = 'Welcome to Auth Service';
const RESET = 'Reset your Auth Service password';
const CHANGED = 'Your Auth Service password was changed';
const VERIFY = 'Verify your email address for Auth Service';

/**
 * Delivery mechanics of the outbox. They run beside HTTP, not through it, so one adapter is enough here;
 * the route suites cover both.
 */
describe.each(DATABASES)('mail outbox on %s', (databaseKind) => {
  const apps: TestApp[] = [];
  const databases: TestDatabase[] = [];
  const servers: { stop(): Promise<void> }[] = [];

  async function freshDatabase(): Promise<TestDatabase> {
    const database = await createTestDatabase(databaseKind);
    databases.push(database);
    return database;
  }

  async function smtpServer(options: Parameters<typeof TestSmtpServer.start>[0] = {}): Promise<TestSmtpServer> {
    const smtp = await TestSmtpServer.start(options);
    servers.push(smtp);
    return smtp;
  }

  async function start(database: TestDatabase, options: Partial<TestAppOptions>): Promise<TestApp> {
    const app = await startTestApp({ adapter: 'fastify', databaseUrl: database.url, ...options });
    apps.push(app);
    return app;
  }

  afterEach(async () => {
    while (apps.length > 0) await apps.pop()!.close();
    while (servers.length > 0) await servers.pop()!.stop().catch(() => undefined);
    while (databases.length > 0) await databases.pop()!.drop();
  });

  it('loses nothing while SMTP is down and the app restarts, then delivers every message exactly once', async () => {
    const database = await freshDatabase();
    const smtp = await smtpServer({ restartable: true });
    await smtp.stop();
    const first = await start(database, { smtpUrl: smtp.url });

    const accounts: SignedUp[] = [];
    for (let i = 0; i < 3; i++) accounts.push(await signUp(first.http));
    for (const { account } of accounts) {
      const res = await first.http().post(`${AUTH}/forgot-password`).send({ email: account.email }).expect(200);
      expect(res.body).toEqual({ message: AuthMessages.RESET_EMAIL_SENT });
    }
    const changer = accounts[0];
    await first
      .http()
      .post(`${AUTH}/change-password`)
      .auth(changer.token, { type: 'bearer' })
      .send({ old_password: changer.account.password, new_password: 'changed while smtp was down' })
      .expect(200);

    await waitUntil('every message has failed once', async () => {
      const rows = await outbox(database);
      return rows.length === 7 && rows.every((row) => row.attempts >= 1 && !row.locked);
    });
    expect(await outbox(database)).toEqual(
      Array(7).fill(expect.objectContaining({ status: 'pending', last_error: expect.stringMatching(/ECONNREFUSED|connect/i) })),
    );
    await first.close();

    await smtp.listen(smtp.port);
    const second = await start(database, { smtpUrl: smtp.url });
    // Each retry is due a few seconds after its failure: move the new instance's clock past them.
    second.advanceClock(DEFAULT_RETRY_DELAYS_MS.at(-1)!);
    await second.drainMail();
    await pause(300); // a duplicate would have time to arrive

    expect(subjectsTo(smtp, changer.account.email)).toEqual([RESET, WELCOME, CHANGED].sort());
    for (const { account } of accounts.slice(1)) expect(subjectsTo(smtp, account.email)).toEqual([RESET, WELCOME].sort());
    expect(smtp.messages).toHaveLength(7);
    expect((await outbox(database)).map((row) => row.status)).toEqual(Array(7).fill('sent'));
  });

  it('takes over a message whose worker died mid-send once its lease runs out, and sends it once', async () => {
    const database = await freshDatabase();
    const smtp = await smtpServer();
    const app = await start(database, { smtpUrl: smtp.url });
    const { account, userId } = await signUp(app.http);
    await smtp.waitFor(account.email);

    // What a crashed instance leaves behind: a claimed message, its lease still running.
    const now = new Date();
    await sql(
      database,
      `INSERT INTO mail_outbox (kind, user_id, recipient, status, attempts, next_attempt_at, locked_until, created_at)
       VALUES ('password-reset', $1, $2, 'pending', 1, $3, $4, $5)`,
      [userId, account.email, sqlTime(databaseKind, now), sqlTime(databaseKind, new Date(now.getTime() + CLAIM_LEASE_MS)), sqlTime(databaseKind, now)],
    );
    await pause(300);
    expect(smtp.to(account.email)).toHaveLength(1);

    app.advanceClock(CLAIM_LEASE_MS + 1000);
    await smtp.waitFor(account.email, (mail) => mail.subject === RESET);
    await app.drainMail();
    await pause(200);
    expect(subjectsTo(smtp, account.email)).toEqual([RESET, WELCOME].sort());
    expect(await outbox(database, `kind = 'password-reset'`)).toEqual([expect.objectContaining({ status: 'sent', attempts: 2 })]);
  });

  it('retries a message that always fails with growing waits (5 s doubling, capped at 5 minutes), then marks it dead after 10 attempts and keeps it', async () => {
    const database = await freshDatabase();
    const smtp = await smtpServer({ rejectRecipient: (address) => address.startsWith('nobody-home') });
    const app = await start(database, { smtpUrl: smtp.url });
    const doomed = await signUp(app.http, { email: `nobody-home-${newAccount().email}` });
    const fine = await signUp(app.http);
    await smtp.waitFor(fine.account.email);
    const [message] = await outbox(database, 'user_id = $1', [doomed.userId]);
    const linesOf = (attempt: number) =>
      apps.flatMap((a) => a.logs.lines).filter((line) => line.includes(`id=${message.id} `) && line.includes(`attempt=${attempt}/10`));

    for (const [index, delayMs] of DEFAULT_RETRY_DELAYS_MS.entries()) {
      const attempt = index + 1;
      await waitUntil(`attempt ${attempt} has failed`, () => linesOf(attempt).length > 0);
      expect(linesOf(attempt)).toEqual([expect.stringContaining(`mail failed id=${message.id} kind=welcome user_id=${doomed.userId} attempt=${attempt}/10 retry_in_ms=${delayMs}: `)]);
      expect(linesOf(attempt)[0]).toMatch(/550/);
      // Not a moment early: just before the wait is over, nothing happens.
      app.advanceClock(delayMs - 1000);
      await pause(60);
      expect(linesOf(attempt + 1)).toEqual([]);
      app.advanceClock(1000);
    }
    await waitUntil('the 10th attempt has failed', () => linesOf(10).length > 0);
    expect(linesOf(10)).toEqual([expect.stringMatching(new RegExp(`^mail dead id=${message.id} kind=welcome user_id=${doomed.userId} attempt=10/10: .*550`))]);

    app.advanceClock(24 * 3600_000);
    await pause(200);
    const [dead] = await outbox(database, 'id = $1', [message.id]);
    expect(dead).toMatchObject({ status: 'dead', attempts: 10, locked: false, last_error: expect.stringMatching(/550/) });
    expect(smtp.to(doomed.account.email)).toEqual([]);
    expect(subjectsTo(smtp, fine.account.email)).toEqual([WELCOME]);
  });

  it('stops retrying after MAIL_MAX_ATTEMPTS', async () => {
    const database = await freshDatabase();
    const smtp = await smtpServer({ rejectRecipient: () => true });
    const app = await start(database, { smtpUrl: smtp.url, env: { MAIL_MAX_ATTEMPTS: '2' } });
    const { userId } = await signUp(app.http);
    await waitUntil('the first attempt has failed', async () => (await outbox(database))[0]?.attempts === 1 && !(await outbox(database))[0].locked);
    app.advanceClock(DEFAULT_RETRY_DELAYS_MS[0]);
    await waitUntil('the message is dead', async () => (await outbox(database))[0].status === 'dead');
    app.advanceClock(24 * 3600_000);
    await pause(200);
    expect(await outbox(database)).toEqual([expect.objectContaining({ user_id: userId, status: 'dead', attempts: 2 })]);
  });

  it('housekeeping deletes messages sent more than 7 days ago, and keeps newer and dead ones', async () => {
    const database = await freshDatabase();
    const smtp = await smtpServer({ rejectRecipient: (address) => address.startsWith('nobody-home') });
    const app = await start(database, { smtpUrl: smtp.url, env: { MAIL_MAX_ATTEMPTS: '1' } });
    const old = await signUp(app.http);
    const doomed = await signUp(app.http, { email: `nobody-home-${newAccount().email}` });
    await app.drainMail();
    app.advanceClock(7 * 24 * 3600_000 + 60_000);
    const recent = await signUp(app.http);
    await app.drainMail();
    const statusOf = async (userId: number) => (await outbox(database, 'user_id = $1', [userId])).map((row) => row.status);
    expect(await statusOf(old.userId)).toEqual(['sent']);
    expect(await statusOf(doomed.userId)).toEqual(['dead']);

    await app.app.get(Housekeeping).run();

    expect(await statusOf(old.userId)).toEqual([]);
    expect(await statusOf(doomed.userId)).toEqual(['dead']);
    expect(await statusOf(recent.userId)).toEqual(['sent']);
    expect(app.logs.lines).toContainEqual(expect.stringContaining('deleted 1 sent mail'));
  });

  it('answers sign-up and forgot-password in the same time whether SMTP is up, refusing or slow', async () => {
    const up = await smtpServer();
    const refusing = await TestSmtpServer.start();
    await refusing.stop();
    const slow = await startSlowSmtp(3000);
    servers.push(slow);

    const medians: Record<string, { signup: number; forgot: number }> = {};
    for (const [name, smtpUrl] of [
      ['up', up.url],
      ['refusing', refusing.url],
      ['slow', slow.url],
    ]) {
      const app = await start(await freshDatabase(), { smtpUrl });
      const signupMs: number[] = [];
      const forgotMs: number[] = [];
      const accounts: NewAccount[] = [];
      for (let i = 0; i < 7; i++) {
        const account = newAccount();
        const started = performance.now();
        await app.http().post(`${AUTH}/signup`).send(account).expect(201);
        signupMs.push(performance.now() - started);
        accounts.push(account);
      }
      for (const account of accounts) {
        const started = performance.now();
        await app.http().post(`${AUTH}/forgot-password`).send({ email: account.email }).expect(200);
        forgotMs.push(performance.now() - started);
      }
      medians[name] = { signup: median(signupMs), forgot: median(forgotMs) };
    }

    for (const name of ['refusing', 'slow']) {
      // Within noise of the healthy case, and nowhere near the slow server's 3 s a message.
      expect(medians[name].signup).toBeLessThan(medians.up.signup + 75);
      expect(medians[name].forgot).toBeLessThan(medians.up.forgot + 75);
    }
  });

  it('takes 20 parallel sign-ups, then 60 parallel mail-writing requests, without a 500, and mails each message once', async () => {
    const database = await freshDatabase();
    const smtp = await smtpServer();
    const app = await start(database, { smtpUrl: smtp.url, env: { PASSWORD_RESET_MAILS_PER_HOUR: '5', VERIFICATION_MAILS_PER_HOUR: '5' } });
    const accounts = Array.from({ length: 20 }, () => newAccount());

    const signups = await Promise.all(accounts.map((account) => app.http().post(`${AUTH}/signup`).send(account)));
    expect(signups.map((res) => res.status)).toEqual(Array(20).fill(201));

    const burst = await Promise.all(
      accounts.flatMap((account, i) => [
        app.http().post(`${AUTH}/forgot-password`).send({ email: account.email }),
        app.http().post(`${AUTH}/resend-verification`).send({ email: account.email }),
        app
          .http()
          .post(`${AUTH}/change-password`)
          .auth(signups[i].body.access_token, { type: 'bearer' })
          .send({ old_password: account.password, new_password: `new parallel password ${i}` }),
      ]),
    );
    expect(burst.map((res) => res.status)).toEqual(Array(60).fill(200));

    await app.drainMail();
    await pause(200);
    for (const account of accounts) expect(subjectsTo(smtp, account.email)).toEqual([CHANGED, RESET, VERIFY, WELCOME].sort());
    expect(smtp.messages).toHaveLength(80);
  });
});

const describePostgres = DATABASES.includes('postgres') ? describe : describe.skip;

describePostgres('two app instances on one PostgreSQL database', () => {
  let database: TestDatabase;
  let smtp: TestSmtpServer;
  let a: TestApp;
  let b: TestApp;

  beforeAll(async () => {
    database = await createTestDatabase('postgres');
    smtp = await TestSmtpServer.start({ restartable: true });
    // Each instance signs its envelope differently, so the test can tell who sent what.
    a = await startTestApp({ adapter: 'fastify', databaseUrl: database.url, smtpUrl: smtp.url, env: { MAIL_FROM: 'a@instances.test' } });
    b = await startTestApp({ adapter: 'express', databaseUrl: database.url, smtpUrl: smtp.url, env: { MAIL_FROM: 'b@instances.test' } });
  });

  afterAll(async () => {
    await a?.close();
    await b?.close();
    await smtp?.stop();
    await database?.drop();
  });

  it('send each message once when both poll the same backlog', async () => {
    await smtp.stop();
    const accounts: NewAccount[] = [];
    for (let i = 0; i < 20; i++) {
      const app = i % 2 === 0 ? a : b;
      const { account } = await signUp(app.http);
      await app.http().post(`${AUTH}/forgot-password`).send({ email: account.email }).expect(200);
      accounts.push(account);
    }
    await waitUntil('every message has failed once', async () => {
      const rows = await outbox(database);
      return rows.length === 40 && rows.every((row) => row.attempts >= 1 && !row.locked);
    });

    await smtp.listen(smtp.port);
    // Both instances find the whole backlog due at once and claim from it side by side.
    a.advanceClock(DEFAULT_RETRY_DELAYS_MS.at(-1)!);
    b.advanceClock(DEFAULT_RETRY_DELAYS_MS.at(-1)!);
    await a.drainMail();
    await pause(300);

    for (const account of accounts) expect(subjectsTo(smtp, account.email)).toEqual([RESET, WELCOME].sort());
    expect(smtp.messages).toHaveLength(40);
    const senders = new Set(smtp.messages.map((mail: ReceivedMail) => mail.from));
    expect(senders).toEqual(new Set(['a@instances.test', 'b@instances.test']));
  });
});
