import fc from 'fast-check';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestDatabase, DATABASES, TestDatabase } from './support/databases';
import { newAccount } from './support/fixtures';
import { LivenessReport, sampleLiveness } from './support/liveness';
import { jsonRequest, RawRequest, RawResponse, sendRaw } from './support/raw-http';
import { Case, CASES, wire, World } from './support/request-arbitraries';
import { TestSmtpServer } from './support/smtp';
import { RunningApp, startStandalone } from './support/standalone';
import { matrix, TEST_JWT_SECRET } from './support/test-app';

/**
 * Property-based fuzzing of every route of the standalone server (the built dist/, in its own process,
 * over real sockets): bodies, headers, methods and paths drawn by fast-check. Whatever comes in, the
 * answer is below 500, an error is an RFC 9457 problem with a status that matches, no answer shows a
 * stack or SQL, and /health/live keeps answering within 100 ms meanwhile.
 *
 * `FUZZ_RUNS` sets the cases per database and adapter (default below), `FUZZ_SEED` replays a run.
 */
const RUNS = Number(process.env.FUZZ_RUNS ?? 2000);
const SEED = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);
/** A request that has not answered in this long is hung: a failure, whatever it would have said. */
const REQUEST_TIMEOUT_MS = 10_000;
/**
 * /health/live must answer within this meanwhile: 99 probes in 100 at least, and every one within the
 * stall bound. On this shared 2-core machine a probe now and then waits for a core behind other suites
 * (seen: up to 190 ms once in 2,500 probes at load 4, with no slow request in flight), which is not the
 * service blocking.
 */
const LIVE_BOUND_MS = 100;
const LIVE_STALL_MS = 500;
const AUTH = '/api/v1/auth';

/** What an answer must never show, unless the request itself carried the same text (an echo is no leak). */
const LEAKS: RegExp[] = [
  /\bat (?:[\w$.<>[\] ]+ )?\(?(?:\/|node:)[^\s)]+:\d+(?::\d+)?\)?/, // a stack frame
  /node_modules|\/src\/|\.ts:\d+/,
  /\b(?:QueryFailedError|EntityNotFound\w*|TypeORMError|TypeError|ReferenceError|RangeError|SyntaxError)\b/,
  /\bSQLITE_[A-Z_]+\b/,
  /syntax error at or near|invalid input syntax|invalid byte sequence|violates (?:unique|foreign key|not-null|check) constraint|duplicate key value/i,
  /\b(?:SELECT\s[^"]{0,200}\sFROM|INSERT\s+INTO|UPDATE\s+"?\w+"?\s+SET|DELETE\s+FROM)\b/i,
  /\$argon2id?\$/,
];

function leakIn(res: RawResponse, sent: RawRequest): string | null {
  const requestText = `${sent.method} ${sent.path} ${JSON.stringify(sent.headers)} ${sent.body?.toString('utf8') ?? ''}`;
  const answer = `${JSON.stringify(res.headers)}\n${res.text}`;
  for (const pattern of LEAKS) {
    const found = answer.match(pattern);
    if (found && !requestText.includes(found[0])) return found[0];
  }
  return null;
}

/** Why an answer breaks the contract, or null when it keeps it. */
function violationOf(res: RawResponse, sent: RawRequest): string | null {
  if (res.status >= 500) return `answered ${res.status}: ${res.text.slice(0, 300)}`;
  if (res.status < 100) return `no status`;
  const leak = leakIn(res, sent);
  if (leak) return `the answer shows ${JSON.stringify(leak)}`;
  if (res.status < 400 || sent.method === 'HEAD') return null;
  const type = String(res.headers['content-type'] ?? '');
  if (!type.startsWith('application/problem+json')) return `a ${res.status} sent as ${type || 'no content type'}: ${res.text.slice(0, 300)}`;
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(res.text) as Record<string, unknown>;
  } catch {
    return `a ${res.status} whose body is not JSON: ${res.text.slice(0, 300)}`;
  }
  if (body.status !== res.status) return `body.status ${String(body.status)} differs from the HTTP status ${res.status}`;
  if (typeof body.type !== 'string' || typeof body.title !== 'string' || typeof body.detail !== 'string') {
    return `not a problem details body: ${res.text.slice(0, 300)}`;
  }
  return null;
}

/** Routes whose success can end the run's session or change its password. */
const ENDS_WORLD = new Set(['refresh', 'signout', 'signout-all', 'end-session', 'change-password', 'delete-me']);

/** Whether the run's session may be over after this answer (or was already, as a clean 401 says). */
function worldMayHaveEnded(c: Case, res: RawResponse): boolean {
  const cleanBearer = c.authorization.kind === 'world' && c.authorization.prefix === 'Bearer ' && c.authorization.suffix === '';
  return (ENDS_WORLD.has(c.route) && res.status < 300) || (cleanBearer && res.status === 401);
}

/** What the fuzzer found, kept as fixed cases: each answered 500 or broke the problem-details rule once. */
const FOUND: { what: string; request: (world: World) => RawRequest; status: number | [fastify: number, express: number] }[] = [
  {
    what: 'a lone surrogate in an email (validator threw URIError: 500 on every email route)',
    request: () => jsonRequest('POST', `${AUTH}/forgot-password`, '{"email":"a\\ud800@example.com"}'),
    status: 422,
  },
  {
    what: 'U+0000 in full_name (PostgreSQL refuses it in text: 500)',
    request: () => jsonRequest('POST', `${AUTH}/signup`, { ...newAccount(), full_name: 'Ada\u0000' }),
    status: 422,
  },
  {
    what: '51 "❤️" in full_name (MaxLength counted 51 characters, the varchar(100) column 102: 500 on PostgreSQL)',
    request: () => jsonRequest('POST', `${AUTH}/signup`, { ...newAccount(), full_name: '❤\ufe0f'.repeat(51) }),
    status: 422,
  },
  {
    what: 'U+0000 in a session id (PostgreSQL: 500)',
    request: (world) => ({ method: 'DELETE', path: `${AUTH}/sessions/${world.session}%00`, headers: { authorization: `Bearer ${world.access}` } }),
    status: 404,
  },
  {
    what: 'a raw byte above 0x7F in the request line (Node: a bodiless 400; Fastify: its own JSON)',
    request: () => ({ method: 'GET', path: `${AUTH}/me?\u00d3=1`, headers: {} }),
    status: 400,
  },
  {
    what: 'headers over 16 KiB (Node: a bodiless 431; Fastify: its own JSON)',
    request: () => ({ method: 'GET', path: `${AUTH}/me`, headers: { 'x-padding': 'a'.repeat(20_000) } }),
    status: 431,
  },
  {
    what: 'a percent-encoding that does not decode (Fastify: its own JSON, quoting the URL)',
    request: (world) => ({ method: 'DELETE', path: `${AUTH}/sessions/%E0%A4%A`, headers: { authorization: `Bearer ${world.access}` } }),
    status: [400, 400],
  },
  {
    what: 'a path parameter over 100 characters (Fastify refused it with its own 414 before maxParamLength was raised)',
    request: (world) => ({ method: 'DELETE', path: `${AUTH}/sessions/${'a'.repeat(300)}`, headers: { authorization: `Bearer ${world.access}` } }),
    status: 404,
  },
];

describe.each(matrix(DATABASES))('fuzzing every route on %s with %s', (databaseKind, adapter) => {
  let database: TestDatabase;
  let smtp: TestSmtpServer;
  let server: RunningApp;
  let workdir: string;
  let world: World;

  const call = (path: string, body: object): Promise<RawResponse> => sendRaw(server.baseUrl, jsonRequest('POST', path, body), REQUEST_TIMEOUT_MS);

  function worldFrom(res: RawResponse, emailAddress: string, password: string): World {
    const body = JSON.parse(res.text) as { access_token: string; refresh_token: string; user: { id: number } };
    const claims = JSON.parse(Buffer.from(body.access_token.split('.')[1], 'base64url').toString()) as { sid: string };
    return { email: emailAddress, password, userId: body.user.id, access: body.access_token, refresh: body.refresh_token, session: claims.sid };
  }

  /** Signs the run's account in again; a fresh account when the fuzzer has locked this one out (429). */
  async function renewWorld(): Promise<void> {
    const signin = await call(`${AUTH}/signin`, { email: world.email, password: world.password });
    if (signin.status === 200) {
      world = worldFrom(signin, world.email, world.password);
      return;
    }
    const account = newAccount();
    const signup = await call(`${AUTH}/signup`, account);
    if (signup.status !== 201) throw new Error(`could not sign up a fresh account: ${signup.status} ${signup.text}`);
    world = worldFrom(signup, account.email, account.password);
  }

  beforeAll(async () => {
    database = await createTestDatabase(databaseKind);
    smtp = await TestSmtpServer.start();
    workdir = mkdtempSync(join(tmpdir(), 'auth-fuzz-'));
    server = await startStandalone(
      {
        DATABASE_URL: database.url,
        SMTP_URL: smtp.url,
        JWT_SECRET: TEST_JWT_SECRET,
        HTTP_ADAPTER: adapter,
        RATE_LIMIT_PER_MINUTE: '0',
        SIGNIN_MAX_FAILURES: '100',
        MAIL_REQUESTS_PER_ACCOUNT_PER_HOUR: '1000',
      },
      workdir,
    );
    const account = newAccount();
    world = worldFrom(await call(`${AUTH}/signup`, account), account.email, account.password);
  });

  afterAll(async () => {
    await server?.stop();
    await smtp?.stop();
    await database?.drop();
    if (workdir) rmSync(workdir, { recursive: true, force: true });
  });

  it(`answers ${RUNS} random requests below 500, errors as problem details, nothing internal shown, /health/live within ${LIVE_BOUND_MS} ms`, async () => {
    const statuses = new Map<string, number>();
    let requests = 0;
    const sampler = sampleLiveness(server.baseUrl);
    const started = Date.now();
    let liveness: LivenessReport;
    try {
      await fc.assert(
        fc.asyncProperty(CASES, async (c) => {
          requests += 1;
          const sent = wire(c, world);
          const res = await sendRaw(server.baseUrl, sent, REQUEST_TIMEOUT_MS);
          const key = `${c.route} ${res.status}`;
          statuses.set(key, (statuses.get(key) ?? 0) + 1);
          const violation = violationOf(res, sent);
          if (violation) throw new Error(`${sent.method} ${sent.path.slice(0, 200)} ${JSON.stringify(sent.headers).slice(0, 600)}: ${violation}`);
          if (c.route === 'change-password' && res.status === 200) {
            world.password = (JSON.parse(sent.body!.toString('utf8')) as { new_password: string }).new_password;
          }
          if (worldMayHaveEnded(c, res)) await renewWorld();
        }),
        { numRuns: RUNS, seed: SEED, verbose: 1 },
      );
    } finally {
      liveness = await sampler.stop();
    }
    const seconds = (Date.now() - started) / 1000;
    const summary = [...statuses.entries()].sort().map(([key, n]) => `${key}: ${n}`).join(', ');
    console.log(
      `fuzz ${databaseKind}/${adapter}: ${RUNS} cases, ${requests} requests with shrinking, in ${seconds.toFixed(1)} s; ` +
        `/health/live ${liveness.samples} probes, p50 ${liveness.p50Ms} ms, p99 ${liveness.p99Ms} ms, max ${liveness.maxMs} ms, ${liveness.failed} failed\n${summary}`,
    );
    expect(liveness.failed).toBe(0);
    expect(liveness.p99Ms).toBeLessThan(LIVE_BOUND_MS);
    expect(liveness.maxMs).toBeLessThan(LIVE_STALL_MS);

    // Still whole afterwards: ready, and the account the run kept can sign in.
    expect((await sendRaw(server.baseUrl, { method: 'GET', path: '/health/ready', headers: {} }, REQUEST_TIMEOUT_MS)).status).toBe(200);
    await renewWorld();
    expect(server.output()).not.toMatch(/unhandled|uncaught/i);
  }, 180_000);

  it.each(FOUND.map((found) => [found.what, found] as const))('answers %s with a problem', async (_what, found) => {
    const sent = found.request(world);
    const res = await sendRaw(server.baseUrl, sent, REQUEST_TIMEOUT_MS);
    expect(violationOf(res, sent)).toBeNull();
    expect(res.status).toBe(typeof found.status === 'number' ? found.status : found.status[adapter === 'fastify' ? 0 : 1]);
  });
});
