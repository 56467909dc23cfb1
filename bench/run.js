#!/usr/bin/env node
// npm run bench: the standalone app on PostgreSQL (rate limits off), driven by autocannon from this
// process, every figure from one run on one machine. See BENCHMARKS.md.
//   BENCH_SECONDS (default 10)   duration of each measured phase
//   BENCH_DATABASE_URL           a PostgreSQL server URL (default postgres://postgres@127.0.0.1:5432/test);
//                                a fresh database is made on it and dropped after
//   BENCH_MAIN                   another build's dist/src/app/main.js, to measure a baseline with this script
//   BENCH_ONLY=operability       only the cost of logs and metrics: /health/live and /me on an instance with
//                                both off and one with both on, in alternating rounds
'use strict';
const { spawn } = require('node:child_process');
const { randomBytes } = require('node:crypto');
const { mkdtempSync, openSync, readFileSync, rmSync, statSync } = require('node:fs');
const os = require('node:os');
const { join } = require('node:path');
const autocannon = require('autocannon');
const { freshPostgresDatabase, startApp, MAIN } = require('./support');
const { countSignInAndRefresh } = require('./sql-count');
const { describeStatements } = require('./sql-statements');

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const SERVER_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const PASSWORD = 'benchmark password 1';
const APP_MAIN = process.env.BENCH_MAIN ?? MAIN;
/** Accounts the spread sign-in phase cycles through. */
const SPREAD_ACCOUNTS = 1000;
/** Sessions the refresh phase rotates side by side, one chain of refresh tokens per connection. */
const REFRESH_CONNECTIONS = 50;
const CLOCK_TICKS_PER_SECOND = 100; // USER_HZ on Linux

/** CPU time a process has used so far, all its threads, in milliseconds (utime + stime). */
function cpuMs(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_SECOND;
}

function cannon(options) {
  return new Promise((resolve, reject) => {
    const instance = autocannon({ duration: SECONDS, ...options }, (err, result) => (err ? reject(err) : resolve(result)));
    return instance;
  });
}

/** Peak resident set size of a process, from the kernel's high-water mark. */
function peakRssMiB(pid) {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmHWM:'));
  return Math.round(Number(line.split(/\s+/)[1]) / 1024);
}

/** Raw argon2id verifications a second with both cores busy, at the app's parameters, in a child process. */
function rawArgon2Rate() {
  const script = `
    const argon2 = require('argon2');
    (async () => {
      const options = { type: argon2.argon2id, memoryCost: 19456, timeCost: 2, parallelism: 1 };
      const hash = await argon2.hash(${JSON.stringify(PASSWORD)}, options);
      const inFlight = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
      const end = Date.now() + ${SECONDS * 1000};
      let done = 0;
      await Promise.all(Array.from({ length: inFlight }, async () => {
        while (Date.now() < end) { await argon2.verify(hash, ${JSON.stringify(PASSWORD)}); done++; }
      }));
      const cpu = process.cpuUsage();
      process.stdout.write(JSON.stringify({ rate: done / ${SECONDS}, cpuMsPerVerify: (cpu.user + cpu.system) / 1000 / done }));
    })();`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', script], { cwd: join(__dirname, '..'), stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`argon2 probe exited ${code}`))));
  });
}

/** One secret for every instance of the run, so a token from one is good on the others. */
const JWT_SECRET = randomBytes(48).toString('base64');

/**
 * `LOG_LEVEL=warn` unless `extraEnv` says otherwise: no line per request, as before the server had them,
 * so the figures stay comparable with earlier runs; the operability phase measures what they cost.
 * stdout goes to a file in the app's folder: written for real (not /dev/null), and not read back by this
 * process, whose load generator would otherwise pay for reading it.
 */
async function startBenchApp(databaseUrl, port, extraEnv = {}) {
  const cwd = mkdtempSync(join(os.tmpdir(), 'auth-bench-'));
  const env = {
    ...process.env,
    NODE_ENV: 'production',
    DATABASE_URL: databaseUrl,
    JWT_SECRET,
    RATE_LIMIT_PER_MINUTE: '0',
    SIGNIN_MAX_FAILURES: '100',
    LOG_LEVEL: 'warn',
    ...extraEnv,
  };
  const logFile = join(cwd, 'stdout.log');
  const app = await startApp({ env, port, cwd, main: APP_MAIN, stdio: ['ignore', openSync(logFile, 'w'), 'inherit'] });
  return { ...app, cwd, loggedBytes: () => statSync(logFile).size };
}

/**
 * The price of the request log and the metrics: the floor and /me on an instance with both off and on
 * one with both on (LOG_LEVEL=info, METRICS_ENABLED=true, /metrics scraped every second as Prometheus
 * would, faster than its usual 15 s), alternating three times; medians, as for the main figures.
 */
async function operabilityCost(databaseUrl, token) {
  const off = await startBenchApp(databaseUrl, 3951, { LOG_LEVEL: 'silent', METRICS_ENABLED: 'false' });
  const on = await startBenchApp(databaseUrl, 3952, { LOG_LEVEL: 'info', METRICS_ENABLED: 'true' });
  const scraper = setInterval(() => fetch(`${on.base}/metrics`).then((res) => res.text()).catch(() => {}), 1000);
  const auth = { authorization: `Bearer ${token}` };
  try {
    for (const app of [off, on]) {
      await cannon({ url: `${app.base}/health/live`, connections: 50, duration: 3 });
      await cannon({ url: `${app.base}/api/v1/auth/me`, connections: 50, headers: auth, duration: 3 });
    }
    const rounds = { offLive: [], offMe: [], onLive: [], onMe: [] };
    for (let round = 0; round < 3; round++) {
      rounds.offLive.push(await cannon({ url: `${off.base}/health/live`, connections: 50 }));
      rounds.onLive.push(await cannon({ url: `${on.base}/health/live`, connections: 50 }));
      rounds.offMe.push(await cannon({ url: `${off.base}/api/v1/auth/me`, connections: 50, headers: auth }));
      rounds.onMe.push(await cannon({ url: `${on.base}/api/v1/auth/me`, connections: 50, headers: auth }));
    }
    const median = Object.fromEntries(Object.entries(rounds).map(([name, list]) => [name, medianRound(list)]));
    const cost = (offRun, onRun) => `  cost ${((1 - onRun.requests.average / offRun.requests.average) * 100).toFixed(1)} %`;
    console.log(row('/health/live, logs+metrics off', median.offLive));
    console.log(row('/health/live, logs+metrics on', median.onLive, cost(median.offLive, median.onLive)));
    console.log(row('/me, logs+metrics off', median.offMe));
    console.log(row('/me, logs+metrics on', median.onMe, cost(median.offMe, median.onMe)));
    console.log(`${'log written by the "on" instance'.padEnd(34)} ${String(Math.round(on.loggedBytes() / 2 ** 20)).padStart(7)} MiB (${off.loggedBytes()} bytes by "off")`);
  } finally {
    clearInterval(scraper);
    for (const app of [off, on]) {
      await app.stop();
      rmSync(app.cwd, { recursive: true, force: true });
    }
  }
}

const json = { 'content-type': 'application/json' };

function cannonInChild(args) {
  return new Promise((resolve, reject) => {
    const bin = join(__dirname, '..', 'node_modules', 'autocannon', 'autocannon.js');
    const child = spawn(process.execPath, [bin, '--json', ...args], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop())) : reject(new Error(`autocannon exited ${code}`))));
  });
}

/**
 * Sign-ins under load with the app's CPU time over the phase: what a sign-in costs the app beyond its
 * hash is its CPU per sign-in less what one verification costs in the raw probe.
 */
async function signInPhase(pid, options) {
  const before = cpuMs(pid);
  const result = await cannon({ url: options.url, method: 'POST', headers: json, connections: 16, ...options });
  return { result, cpuMsPerRequest: (cpuMs(pid) - before) / Math.max(1, result['2xx']) };
}

/** Refresh token chains, one per connection, started by `tokens` and carried from answer to request. */
function refreshRequests(tokens) {
  let next = 0;
  return [
    {
      method: 'POST',
      path: '/api/v1/auth/refresh',
      headers: json,
      setupRequest: (request, context) => {
        context.slot ??= next++ % tokens.length;
        return { ...request, body: JSON.stringify({ refresh_token: tokens[context.slot] }) };
      },
      onResponse: (status, body, context) => {
        if (status === 200) tokens[context.slot] = JSON.parse(body).refresh_token;
      },
    },
  ];
}

async function signInMany(base, account, count) {
  return Promise.all(
    Array.from({ length: count }, async () => {
      const res = await fetch(`${base}/api/v1/auth/signin`, { method: 'POST', headers: json, body: JSON.stringify(account) });
      if (res.status !== 200) throw new Error(`sign-in failed: ${res.status} ${await res.text()}`);
      return (await res.json()).refresh_token;
    }),
  );
}

/**
 * Accounts that share the sign-in account's password hash, straight into the database; and that account
 * at its session cap, so that every sign-in of the one-account phase also ends its oldest session.
 */
async function seedSpreadAccounts(databaseUrl, fromEmail) {
  const { Client } = require('pg');
  const client = new Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query(
      `INSERT INTO users (email, username, username_canonical, hashed_password, is_active, is_verified, roles, token_version, created_at, updated_at)
       SELECT 'spread' || n || '@example.com', 'spread' || n, 'spread' || n, u.hashed_password, true, true, '', 0, now(), now()
       FROM generate_series(1, $1::int) AS n, users u WHERE u.email = $2`,
      [SPREAD_ACCOUNTS, fromEmail],
    );
    await client.query(
      `INSERT INTO user_sessions (id, user_id, created_at, last_used_at, expires_at, aal, amr)
       SELECT gen_random_uuid(), u.id, now(), now(), now() + interval '7 days', 'aal1', 'pwd'
       FROM generate_series(1, 100), users u WHERE u.email = $1`,
      [fromEmail],
    );
  } finally {
    await client.end();
  }
}

function medianRound(rounds) {
  return [...rounds].sort((a, b) => a.requests.average - b.requests.average)[rounds.length >> 1];
}

function row(name, result, extra = '') {
  const rps = Math.round(result.requests.average);
  const errors = result.non2xx + result.errors;
  // (A non-2xx here means the phase measured something else than intended: it is flagged, not hidden.)
  return `${name.padEnd(34)} ${String(rps).padStart(7)} req/s  p50 ${String(result.latency.p50).padStart(4)} ms  p99 ${String(result.latency.p99).padStart(4)} ms${errors ? `  (${errors} errors!)` : ''}${extra}`;
}

(async () => {
  // Counted first, on an app of its own behind a counting proxy, while the machine is quiet.
  const sql = process.env.BENCH_ONLY === 'operability' ? null : await countSignInAndRefresh({ main: APP_MAIN });
  const database = await freshPostgresDatabase(SERVER_URL, `auth_bench_${process.pid}`);
  const { child, base, cwd, stop } = await startBenchApp(database.url, 3950);
  try {
    const signup = await fetch(`${base}/api/v1/auth/signup`, {
      method: 'POST',
      headers: json,
      body: JSON.stringify({ email: 'load@example.com', username: 'loadtester', password: PASSWORD }),
    });
    if (signup.status !== 201) throw new Error(`sign-up failed: ${signup.status} ${await signup.text()}`);
    const { access_token: token } = await signup.json();
    const auth = { authorization: `Bearer ${token}` };
    // Sign-in load goes to an account of its own: every sign-in opens a session, and beyond 100 a user's
    // least recently used session ends, which would end the one /me is measured with.
    const signinAccount = { email: 'signin-load@example.com', username: 'signinload', password: PASSWORD };
    const second = await fetch(`${base}/api/v1/auth/signup`, { method: 'POST', headers: json, body: JSON.stringify(signinAccount) });
    if (second.status !== 201) throw new Error(`sign-up failed: ${second.status} ${await second.text()}`);
    const signinBody = JSON.stringify({ email: signinAccount.email, password: PASSWORD });
    if (process.env.BENCH_ONLY === 'operability') {
      await operabilityCost(database.url, token);
      return;
    }
    await seedSpreadAccounts(database.url, signinAccount.email);
    const refreshAccount = { email: 'refresh-load@example.com', username: 'refreshload', password: PASSWORD };
    const third = await fetch(`${base}/api/v1/auth/signup`, { method: 'POST', headers: json, body: JSON.stringify(refreshAccount) });
    if (third.status !== 201) throw new Error(`sign-up failed: ${third.status} ${await third.text()}`);
    const refreshSignIn = { email: refreshAccount.email, password: PASSWORD };

    // The floor and the guarded route alternate three times; each is reported by its median round, so a
    // passing disturbance of this shared machine does not decide a ratio.
    await cannon({ url: `${base}/health/live`, connections: 50, duration: 3 }); // warm-up
    await cannon({ url: `${base}/api/v1/auth/me`, connections: 50, headers: auth, duration: 3 });
    const liveRounds = [];
    const meRounds = [];
    const refreshRounds = [];
    for (let round = 0; round < 3; round++) {
      liveRounds.push(await cannon({ url: `${base}/health/live`, connections: 50 }));
      meRounds.push(await cannon({ url: `${base}/api/v1/auth/me`, connections: 50, headers: auth }));
      // Fresh chains each round: a request cut off by the end of the last round spent a token unseen.
      const tokens = await signInMany(base, refreshSignIn, REFRESH_CONNECTIONS);
      refreshRounds.push(await cannon({ url: base, connections: REFRESH_CONNECTIONS, requests: refreshRequests(tokens) }));
    }
    const live = medianRound(liveRounds);
    const me = medianRound(meRounds);
    const refresh = medianRound(refreshRounds);
    // Raw argon2 before and after the sign-in phases, averaged, for the same reason.
    const argon2Before = await rawArgon2Rate();
    // All sign-ins for one account, which is at its session cap: each one also ends the oldest session.
    const signin = await signInPhase(child.pid, { url: `${base}/api/v1/auth/signin`, body: signinBody });
    let spreadNext = 0;
    const spread = await signInPhase(child.pid, {
      url: base,
      requests: [
        {
          method: 'POST',
          path: '/api/v1/auth/signin',
          setupRequest: (request) => ({ ...request, body: JSON.stringify({ email: `spread${(spreadNext++ % SPREAD_ACCOUNTS) + 1}@example.com`, password: PASSWORD }) }),
        },
      ],
    });
    const argon2After = await rawArgon2Rate();
    const argon2Rate = (argon2Before.rate + argon2After.rate) / 2;
    const hashCpuMs = (argon2Before.cpuMsPerVerify + argon2After.cpuMsPerVerify) / 2;
    // The probe runs in a process of its own: sharing this one's event loop with the sign-in load would
    // add the load generator's own delays to the latency it reports.
    const [, meUnderLoad] = await Promise.all([
      cannon({ url: `${base}/api/v1/auth/signin`, method: 'POST', headers: json, body: signinBody, connections: 16 }),
      cannonInChild(['-c', '4', '-R', '200', '-d', String(SECONDS), '-H', `authorization=Bearer ${token}`, `${base}/api/v1/auth/me`]),
    ]);
    // A flood of 500 sign-ins a second from 200 connections, seven times what hashing can take: the excess
    // is turned away with 503 at once, memory stays bounded, and the cheapest route keeps its latency.
    const [flood, liveUnderFlood] = await Promise.all([
      cannon({ url: `${base}/api/v1/auth/signin`, method: 'POST', headers: json, body: signinBody, connections: 200, overallRate: 500 }),
      cannonInChild(['-c', '4', '-R', '200', '-d', String(SECONDS), `${base}/health/live`]),
    ]);
    const signupRun = await cannon({
      url: `${base}/api/v1/auth/signup`,
      method: 'POST',
      headers: json,
      connections: 16,
      idReplacement: true,
      body: JSON.stringify({ email: 'u[<id>]@example.com', username: 'u[<id>]', password: PASSWORD }),
    });
    const rss = peakRssMiB(child.pid);

    const cpu = os.cpus();
    const ratioToFloor = (result) => `  ratio to floor ${(result.requests.average / live.requests.average).toFixed(2)}`;
    const beyondHash = (phase) => `, CPU ${phase.cpuMsPerRequest.toFixed(1)} ms a sign-in, ${(phase.cpuMsPerRequest - hashCpuMs).toFixed(1)} ms beyond the hash`;
    console.log(`node ${process.version}, ${cpu.length} x ${cpu[0].model}, ${Math.round(os.totalmem() / 2 ** 30)} GiB; PostgreSQL; ${SECONDS} s a phase`);
    console.log(`app: ${APP_MAIN}`);
    console.log(row('GET /health/live (floor)', live));
    console.log(row('GET /api/v1/auth/me', me, ratioToFloor(me)));
    console.log(row('POST /api/v1/auth/refresh', refresh, ratioToFloor(refresh)));
    console.log(`${'raw argon2id verify (m=19456,t=2,p=1)'.padEnd(34)} ${String(Math.round(argon2Rate)).padStart(7)} /s  CPU ${hashCpuMs.toFixed(1)} ms a verify`);
    const ratioToArgon2 = (phase) => `  ratio to raw argon2 ${(phase.result.requests.average / argon2Rate).toFixed(2)}`;
    console.log(row('POST /signin, one account at cap', signin.result, ratioToArgon2(signin) + beyondHash(signin)));
    console.log(row(`POST /signin, ${SPREAD_ACCOUNTS} accounts`, spread.result, ratioToArgon2(spread) + beyondHash(spread)));
    console.log(row('GET /me while sign-in saturated', meUnderLoad, '  (200 req/s offered)'));
    console.log(
      `${'sign-in flood, 500 req/s offered'.padEnd(34)} ${String(Math.round(flood.requests.average)).padStart(7)} req/s  ` +
        `2xx ${flood['2xx']}, 503 ${flood.non2xx}, errors ${flood.errors}`,
    );
    console.log(row('GET /health/live during the flood', liveUnderFlood, '  (200 req/s offered)'));
    console.log(row('POST /api/v1/auth/signup', signupRun));
    console.log(`${'peak RSS of the app'.padEnd(34)} ${String(rss).padStart(7)} MiB`);
    for (const [name, counted] of [['one sign-in', sql.signIn], ['one refresh', sql.refresh]]) {
      console.log(`SQL of ${name}: ${counted.statements.length} statements, ${counted.roundTrips} round trips`);
      for (const line of describeStatements(counted.statements, 100)) console.log(line);
    }
    await operabilityCost(database.url, token);
  } finally {
    await stop();
    rmSync(cwd, { recursive: true, force: true });
    await database.drop();
  }
})().catch((error) => {
  console.error(error);
  process.exit(1);
});
