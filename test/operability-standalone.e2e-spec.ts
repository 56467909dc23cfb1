import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestDatabase, DATABASES, TestDatabase } from './support/databases';
import { newAccount, waitUntil } from './support/fixtures';
import { REDIS_MISSING, redisDatabaseUrl } from './support/redis';
import { RunningApp, startStandalone } from './support/standalone';
import { ADAPTERS, TEST_JWT_SECRET } from './support/test-app';

const AUTH = '/api/v1/auth';
const SPAN_KIND_SERVER = 2;
const SPAN_KIND_CLIENT = 3;

interface Span {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: { key: string; value: { stringValue?: string; intValue?: string | number } }[];
}

/**
 * An OTLP/HTTP (JSON) receiver that keeps every span it is sent in memory: the standalone server
 * exports to it exactly as it would to a collector.
 */
async function startSpanReceiver(): Promise<{ url: string; spans: Span[]; server: Server }> {
  const spans: Span[] = [];
  const server = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk) => (body += chunk));
    request.on('end', () => {
      if (request.url === '/v1/traces') {
        const payload = JSON.parse(body) as { resourceSpans: { scopeSpans: { spans: Span[] }[] }[] };
        for (const resource of payload.resourceSpans) for (const scope of resource.scopeSpans) spans.push(...scope.spans);
      }
      response.writeHead(200, { 'Content-Type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, spans, server };
}

const attribute = (span: Span, key: string) => {
  const value = span.attributes.find((entry) => entry.key === key)?.value;
  return value?.stringValue ?? (value?.intValue !== undefined ? String(value.intValue) : undefined);
};

/** Older and newer semantic conventions name the database system differently. */
const dbSystem = (span: Span) => attribute(span, 'db.system.name') ?? attribute(span, 'db.system');

const postJson = (url: string, body: object, headers: Record<string, string> = {}) =>
  fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body: JSON.stringify(body) });

(DATABASES.includes('postgres') ? describe : describe.skip).each(ADAPTERS)('OpenTelemetry traces of the standalone server with %s', (adapter) => {
  let database: TestDatabase;
  let receiver: Awaited<ReturnType<typeof startSpanReceiver>>;
  let app: RunningApp;
  const cwd = mkdtempSync(join(tmpdir(), 'auth-tracing-'));

  beforeAll(async () => {
    database = await createTestDatabase('postgres');
    receiver = await startSpanReceiver();
    app = await startStandalone(
      {
        HTTP_ADAPTER: adapter,
        DATABASE_URL: database.url,
        JWT_SECRET: TEST_JWT_SECRET,
        RATE_LIMIT_PER_MINUTE: '0',
        ...(REDIS_MISSING ? {} : { REDIS_URL: redisDatabaseUrl(7) }),
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_BSP_SCHEDULE_DELAY: '100',
        OTEL_SERVICE_NAME: 'auth-under-test',
      },
      cwd,
    );
  });

  afterAll(async () => {
    await app?.stop();
    await new Promise((resolve) => receiver?.server.close(resolve));
    await database?.drop();
    rmSync(cwd, { recursive: true, force: true });
  });

  it('sends one server span per request, with the database queries it made beneath it', async () => {
    const account = newAccount();
    const signup = await postJson(`${app.baseUrl}${AUTH}/signup`, account);
    expect(signup.status).toBe(201);
    const { access_token: token } = (await signup.json()) as { access_token: string };
    expect((await fetch(`${app.baseUrl}${AUTH}/me`, { headers: { Authorization: `Bearer ${token}` } })).status).toBe(200);
    expect((await postJson(`${app.baseUrl}${AUTH}/signin`, { email: account.email, password: account.password })).status).toBe(200);
    await fetch(`${app.baseUrl}/health/live`); // a probe: left untraced

    const serverSpans = () => receiver.spans.filter((span) => span.kind === SPAN_KIND_SERVER);
    await waitUntil('three server spans arrived', () => serverSpans().length >= 3, 10_000);
    await new Promise((resolve) => setTimeout(resolve, 500)); // anything else of the same requests
    const servers = serverSpans();
    expect(servers.map((span) => `${attribute(span, 'http.request.method') ?? attribute(span, 'http.method')} ${attribute(span, 'http.route')}`)).toEqual([
      `POST ${AUTH}/signup`,
      `GET ${AUTH}/me`,
      `POST ${AUTH}/signin`,
    ]);
    expect(new Set(servers.map((span) => span.traceId)).size).toBe(3);

    const byId = new Map(receiver.spans.map((span) => [span.spanId, span]));
    /** The server span a span descends from, following its parents. */
    const rootOf = (span: Span): Span | undefined => {
      let current: Span | undefined = span;
      while (current && current.kind !== SPAN_KIND_SERVER) current = current.parentSpanId ? byId.get(current.parentSpanId) : undefined;
      return current;
    };
    const queriesOf = (server: Span) =>
      receiver.spans.filter((span) => span.kind === SPAN_KIND_CLIENT && dbSystem(span) === 'postgresql' && rootOf(span) === server);
    const [signupSpan, meSpan, signinSpan] = servers;
    // The sign-up's transaction: its INSERT among them, with the statement but never its values.
    const signupQueries = queriesOf(signupSpan);
    expect(signupQueries.length).toBeGreaterThanOrEqual(3);
    expect(signupQueries.some((span) => /INSERT INTO "users"/.test(attribute(span, 'db.statement') ?? attribute(span, 'db.query.text') ?? ''))).toBe(true);
    expect(JSON.stringify(receiver.spans)).not.toContain(account.password);
    expect(JSON.stringify(receiver.spans)).not.toContain(account.email);
    expect(queriesOf(signinSpan).length).toBeGreaterThanOrEqual(1);
    // /me is served from the user cache right after the sign-up: it may need no query at all.
    expect(meSpan.traceId).not.toBe(signupSpan.traceId);
    if (!REDIS_MISSING) {
      // The sign-in's failure counter lives in Redis.
      const redisSpans = receiver.spans.filter((span) => dbSystem(span) === 'redis' && rootOf(span) === signinSpan);
      expect(redisSpans.length).toBeGreaterThanOrEqual(1);
    }
    expect(app.output()).toMatch(/tracing to http:\/\/127\.0\.0\.1/);
  });
});

describe('the standalone server without OTEL_EXPORTER_OTLP_ENDPOINT', () => {
  it('loads nothing of OpenTelemetry', () => {
    const tracingJs = join(__dirname, '..', 'dist', 'src', 'app', 'tracing.js');
    const script = `
      const { startTracing } = require(${JSON.stringify(tracingJs)});
      const started = startTracing({});
      const loaded = Object.keys(require.cache).filter((path) => path.includes('@opentelemetry'));
      process.stdout.write(JSON.stringify({ started, loaded }));`;
    const result = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
    expect(result.stderr).toBe('');
    expect(JSON.parse(result.stdout)).toEqual({ started: false, loaded: [] });
  });
});

describe('LOG_LEVEL and LOG_FORMAT of the standalone server', () => {
  const cwd = mkdtempSync(join(tmpdir(), 'auth-log-settings-'));
  afterAll(() => rmSync(cwd, { recursive: true, force: true }));

  async function outputOf(env: Record<string, string>): Promise<string> {
    const app = await startStandalone({ JWT_SECRET: TEST_JWT_SECRET, DATABASE_URL: `sqlite:${join(cwd, `${Object.values(env).join('-')}.sqlite`)}`, ...env }, cwd);
    try {
      expect((await postJson(`${app.baseUrl}${AUTH}/signin`, { email: 'nobody@example.com', password: 'not a password at all' })).status).toBe(401);
      await new Promise((resolve) => setTimeout(resolve, 300));
      return app.output();
    } finally {
      await app.stop();
    }
  }

  it('writes one JSON object a line by default, a line per request among them', async () => {
    const lines = (await outputOf({ LOG_LEVEL: 'info' })).trim().split('\n');
    const parsed = lines.map((line) => JSON.parse(line) as { level: string; msg: string; route?: string; status?: number });
    expect(parsed).toContainEqual(expect.objectContaining({ level: 'info', msg: 'request completed', route: `${AUTH}/signin`, status: 401 }));
  });

  it('leaves out what is below LOG_LEVEL', async () => {
    const output = await outputOf({ LOG_LEVEL: 'warn', NODE_ENV: 'production' });
    expect(output).not.toContain('request completed');
    expect(output).not.toContain('listening on port');
    // A warning still gets through: production without SMTP_URL.
    const warnings = output.trim().split('\n').map((line) => JSON.parse(line) as { level: string; msg: string });
    expect(warnings).toContainEqual(expect.objectContaining({ level: 'warn', msg: expect.stringMatching(/^SMTP_URL is not set/) }));
  });

  it('writes lines for a terminal with LOG_FORMAT=pretty', async () => {
    const output = await outputOf({ LOG_FORMAT: 'pretty' });
    expect(output).toMatch(/INFO.*request completed/);
    expect(output.split('\n').filter((line) => line.startsWith('{'))).toEqual([]);
  });

  it('refuses a LOG_LEVEL it does not know, naming it, and METRICS_PORT without METRICS_ENABLED', () => {
    const main = join(__dirname, '..', 'dist', 'src', 'app', 'main.js');
    const run = (env: Record<string, string>) => spawnSync(process.execPath, [main], { cwd, env: { PATH: process.env.PATH ?? '', ...env }, encoding: 'utf8', timeout: 20_000 });
    const level = run({ LOG_LEVEL: 'loud' });
    expect(level.status).toBe(1);
    expect(level.stderr.trim()).toBe('Configuration error: LOG_LEVEL must be one of trace, debug, info, warn, error, fatal, silent, got "loud"');
    const port = run({ METRICS_PORT: '9464' });
    expect(port.status).toBe(1);
    expect(port.stderr.trim()).toBe('Configuration error: METRICS_PORT is set but METRICS_ENABLED is not true');
  });
});
