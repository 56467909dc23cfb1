#!/usr/bin/env node
// npm run bench:sessions: what the session check costs on a guarded request. GET /api/v1/auth/me on the
// current build (dist/src/app/main.js) against a baseline commit built in a temporary git worktree (the code
// before sessions), both on fresh PostgreSQL databases, rate limits off, measured alternately so that
// drift on this shared machine hits both alike. See BENCHMARKS.md.
//   BASELINE_REF (default dfe7d88, the last commit before sessions)  the commit to compare against
//   CURRENT_REF (unset)     measure this commit, built in a worktree too, instead of dist/src/app/main.js
//                           (e.g. BASELINE_REF=HEAD CURRENT_REF=HEAD: two equal builds, the ratio should be ~1)
//   DURATION (default 10)   seconds of each measured phase
//   ROUNDS (default 3)      baseline/current pairs; the order flips every round
//   USER_CACHE_TTL_SECONDS (app default 5)  passed to both apps; 0 measures the uncached path, where the
//                           session check is part of the one query that reads the user
//   BENCH_DATABASE_URL      a PostgreSQL server URL (default postgres://postgres@127.0.0.1:5432/test);
//                           a fresh database per app is made on it and dropped after
'use strict';
const { execFileSync } = require('node:child_process');
const { existsSync, mkdtempSync, rmSync, symlinkSync } = require('node:fs');
const os = require('node:os');
const { join } = require('node:path');
const autocannon = require('autocannon');
const { MAIN, freshPostgresDatabase, startApp } = require('./support');

const REPO = join(__dirname, '..');
// "ServiceBusyException in common: ...", the HEAD of main before sessions.
const BASELINE_REF = process.env.BASELINE_REF ?? 'dfe7d88156f1d301627d5b6512d67eb15ca1c158';
const CURRENT_REF = process.env.CURRENT_REF || undefined;
const DURATION = Number(process.env.DURATION ?? 10);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const SERVER_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const CONNECTIONS = 50;
const JWT_SECRET = 'session-check-benchmark-secret-0123456789abcdefg'; // 48 characters
const PASSWORD = 'bench phrase 8231!';
const ACCOUNT = { email: 'load@example.com', username: 'loadtester', password: PASSWORD };

if (!(DURATION > 0) || !Number.isInteger(ROUNDS) || ROUNDS < 1) {
  console.error('DURATION must be a positive number of seconds and ROUNDS a positive integer');
  process.exit(2);
}

const git = (...args) => execFileSync('git', args, { cwd: REPO, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();

function cannon(options) {
  return new Promise((resolve, reject) => {
    autocannon({ connections: CONNECTIONS, duration: DURATION, ...options }, (err, result) => (err ? reject(err) : resolve(result)));
  });
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  return (sorted[(sorted.length - 1) >> 1] + sorted[sorted.length >> 1]) / 2;
};

const failures = (result) => result.errors + result.timeouts + result.non2xx;

function row(name, result) {
  const rps = Math.round(result.requests.average);
  const bad = failures(result);
  return `${name.padEnd(34)} ${String(rps).padStart(7)} req/s  p50 ${String(result.latency.p50).padStart(4)} ms  p99 ${String(result.latency.p99).padStart(4)} ms${bad ? `  (${bad} errors!)` : ''}`;
}

/** A detached worktree of `ref` under os.tmpdir(), built with its own build script against this repo's node_modules. */
function buildRef(ref, dir) {
  git('worktree', 'add', '--detach', dir, ref);
  symlinkSync(join(REPO, 'node_modules'), join(dir, 'node_modules'), 'dir');
  // npm run build there: whatever that commit's package.json says (tsc -p tsconfig.build.json today).
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] });
  // Before the library layout the entry point was dist/src/main.js.
  const main = [join(dir, 'dist', 'src', 'app', 'main.js'), join(dir, 'dist', 'src', 'main.js')].find(existsSync);
  if (!main) throw new Error(`the build of ${ref} made no main.js`);
  return main;
}

function removeWorktree(dir) {
  try {
    git('worktree', 'remove', '--force', dir);
  } catch (error) {
    console.error(`git worktree remove --force ${dir} failed: ${error.stderr ?? error.message}`);
  }
  rmSync(dir, { recursive: true, force: true });
  try {
    git('worktree', 'prune');
  } catch {
    // nothing left to prune
  }
}

async function startBenchApp(name, main, port, cleanups) {
  // A stale process on the port would answer /health/live and be measured instead of this build.
  const taken = await fetch(`http://127.0.0.1:${port}/health/live`).then(() => true, () => false);
  if (taken) throw new Error(`port ${port} is already in use`);
  const database = await freshPostgresDatabase(SERVER_URL, `auth_sessions_${name}_${process.pid}`);
  cleanups.push(() => database.drop());
  // Mail (no SMTP_URL) goes to .eml files under ./data: a temporary cwd keeps them out of the repo.
  const cwd = mkdtempSync(join(os.tmpdir(), `auth-sessions-${name}-`));
  cleanups.push(() => rmSync(cwd, { recursive: true, force: true }));
  const env = {
    ...process.env,
    NODE_ENV: 'production',
    DATABASE_URL: database.url,
    JWT_SECRET,
    RATE_LIMIT_PER_MINUTE: '0',
  };
  // Both apps keep everything in process: no SMTP, and no Redis shared between them.
  delete env.SMTP_URL;
  delete env.REDIS_URL;
  const app = await startApp({ env, port, cwd, main, stdio: ['ignore', 'ignore', 'inherit'] });
  cleanups.push(() => app.stop());

  const signup = await fetch(`${app.base}/api/v1/auth/signup`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(ACCOUNT),
  });
  if (signup.status !== 201) throw new Error(`${name}: sign-up failed: ${signup.status} ${await signup.text()}`);
  const { access_token: token } = await signup.json();
  if (typeof token !== 'string') throw new Error(`${name}: sign-up answered no access_token`);
  const headers = { authorization: `Bearer ${token}` };
  const me = await fetch(`${app.base}/api/v1/auth/me`, { headers });
  if (me.status !== 200) throw new Error(`${name}: GET /api/v1/auth/me answered ${me.status} ${await me.text()}`);
  return { name, main, base: app.base, headers };
}

(async () => {
  const cleanups = [];
  const cleanUp = async () => {
    while (cleanups.length) {
      try {
        await cleanups.pop()();
      } catch (error) {
        console.error(`clean-up failed: ${error.message}`);
      }
    }
  };
  // Ctrl-C still stops the apps, drops the databases and removes the worktree.
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => cleanUp().finally(() => process.exit(130)));
  }

  let exitCode = 0;
  try {
    if (!CURRENT_REF && !existsSync(MAIN)) throw new Error(`${MAIN} is missing: run npm run build (npm run bench:sessions does)`);
    const commit = (ref) => git('rev-parse', '--verify', `${ref}^{commit}`);
    const describe = (hash) => `${hash.slice(0, 7)} ${git('log', '-1', '--format=%s', hash).slice(0, 80)}`;
    const worktreeBuild = (hash, label) => {
      const dir = mkdtempSync(join(os.tmpdir(), `auth-${label}-`));
      cleanups.push(() => removeWorktree(dir));
      return buildRef(hash, dir);
    };
    const baselineCommit = commit(BASELINE_REF);
    const currentCommit = CURRENT_REF && commit(CURRENT_REF);
    const baselineMain = worktreeBuild(baselineCommit, 'baseline');
    const currentMain = currentCommit ? worktreeBuild(currentCommit, 'current') : MAIN;
    const head = git('rev-parse', 'HEAD');
    const dirty = git('status', '--porcelain', '--', 'src') !== '';

    const baseline = await startBenchApp('baseline', baselineMain, 3980, cleanups);
    const current = await startBenchApp('current', currentMain, 3981, cleanups);

    // Warm-up: JIT, connection pools, caches.
    for (const app of [baseline, current]) await cannon({ url: `${app.base}/api/v1/auth/me`, headers: app.headers, duration: 2 });

    const rounds = { baseline: [], current: [] };
    for (let round = 0; round < ROUNDS; round++) {
      // The first of a pair runs right after the other's load: flipping the order shares that out too.
      const order = round % 2 === 0 ? [baseline, current] : [current, baseline];
      for (const app of order) rounds[app.name].push(await cannon({ url: `${app.base}/api/v1/auth/me`, headers: app.headers }));
    }
    const floor = await cannon({ url: `${current.base}/health/live` });

    const cpu = os.cpus();
    console.log(
      `node ${process.version}, ${cpu.length} x ${cpu[0].model}, ${Math.round(os.totalmem() / 2 ** 30)} GiB; PostgreSQL; ` +
        `${DURATION} s a phase, ${CONNECTIONS} connections, ${ROUNDS} rounds`,
    );
    console.log(`baseline  ${describe(baselineCommit)}`);
    console.log(
      currentCommit
        ? `current   ${describe(currentCommit)} (CURRENT_REF)`
        : `current   dist/src/app/main.js, built from HEAD ${head.slice(0, 7)}${dirty ? ' with uncommitted changes in src/' : ''}`,
    );
    for (let round = 0; round < ROUNDS; round++) {
      console.log(row(`round ${round + 1} GET /me baseline`, rounds.baseline[round]));
      console.log(row(`round ${round + 1} GET /me current`, rounds.current[round]));
    }
    const medians = {};
    for (const name of ['baseline', 'current']) {
      medians[name] = { rps: median(rounds[name].map((r) => r.requests.average)), p99: median(rounds[name].map((r) => r.latency.p99)) };
      console.log(
        `${`median GET /me ${name}`.padEnd(34)} ${String(Math.round(medians[name].rps)).padStart(7)} req/s  ` +
          `         p99 ${String(medians[name].p99).padStart(4)} ms`,
      );
    }
    console.log(row('GET /health/live current (floor)', floor));
    const ratio = medians.current.rps / medians.baseline.rps;
    // At saturation the two cores' time per request is 1/throughput: the difference is what the check adds.
    const addedMicros = 1e6 / medians.current.rps - 1e6 / medians.baseline.rps;
    console.log(
      `current/baseline GET /me: ${ratio.toFixed(2)} of the req/s (${addedMicros >= 0 ? '+' : ''}${addedMicros.toFixed(1)} µs a request at saturation); ` +
        `current GET /me is ${(medians.current.rps / floor.requests.average).toFixed(2)} of the floor`,
    );

    const bad = [...rounds.baseline, ...rounds.current, floor].reduce((sum, result) => sum + failures(result), 0);
    if (bad) {
      console.error(`FAILED: ${bad} requests errored, timed out or answered non-2xx; the figures above do not measure the intended route`);
      exitCode = 1;
    }
  } finally {
    await cleanUp();
  }
  process.exit(exitCode);
})().catch((error) => {
  console.error(error);
  process.exit(1);
});
