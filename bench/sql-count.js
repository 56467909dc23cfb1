#!/usr/bin/env node
// npm run bench:sql: the SQL statements and round trips to PostgreSQL of one sign-in and one refresh,
// counted on the wire (bench/sql-statements.js), each statement printed. See BENCHMARKS.md.
//   BENCH_DATABASE_URL   a PostgreSQL server URL (default postgres://postgres@127.0.0.1:5432/test)
//   BENCH_MAIN           another build's dist/src/app/main.js (to compare with a baseline)
'use strict';
const { randomBytes } = require('node:crypto');
const { mkdtempSync, rmSync } = require('node:fs');
const os = require('node:os');
const { join } = require('node:path');
const { freshPostgresDatabase, startApp, MAIN } = require('./support');
const { startStatementProxy, statementsPerRequest, describeStatements } = require('./sql-statements');

const SERVER_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const PASSWORD = 'benchmark password 1';
const json = { 'content-type': 'application/json' };

/** Statements and round trips of one sign-in and of one refresh, on a fresh database through the proxy. */
async function countSignInAndRefresh({ main = MAIN, port = 3960, times = 20 } = {}) {
  const database = await freshPostgresDatabase(SERVER_URL, `auth_sql_${process.pid}_${port}`);
  const proxy = await startStatementProxy(database.url);
  const cwd = mkdtempSync(join(os.tmpdir(), 'auth-sql-'));
  const env = { ...process.env, NODE_ENV: 'production', DATABASE_URL: proxy.url, JWT_SECRET: randomBytes(48).toString('base64'), RATE_LIMIT_PER_MINUTE: '0' };
  const app = await startApp({ env, port, cwd, main, stdio: ['ignore', 'ignore', 'inherit'] });
  try {
    const account = { email: 'sql-count@example.com', username: 'sqlcount', password: PASSWORD };
    const signup = await fetch(`${app.base}/api/v1/auth/signup`, { method: 'POST', headers: json, body: JSON.stringify(account) });
    if (signup.status !== 201) throw new Error(`sign-up failed: ${signup.status} ${await signup.text()}`);
    let refreshToken = (await signup.json()).refresh_token;
    const signIn = await statementsPerRequest(proxy, times, async () => {
      const res = await fetch(`${app.base}/api/v1/auth/signin`, { method: 'POST', headers: json, body: JSON.stringify({ email: account.email, password: PASSWORD }) });
      if (res.status !== 200) throw new Error(`sign-in failed: ${res.status} ${await res.text()}`);
    });
    const refresh = await statementsPerRequest(proxy, times, async () => {
      const res = await fetch(`${app.base}/api/v1/auth/refresh`, { method: 'POST', headers: json, body: JSON.stringify({ refresh_token: refreshToken }) });
      if (res.status !== 200) throw new Error(`refresh failed: ${res.status} ${await res.text()}`);
      refreshToken = (await res.json()).refresh_token;
    });
    return { signIn, refresh };
  } finally {
    await app.stop();
    await proxy.close();
    rmSync(cwd, { recursive: true, force: true });
    await database.drop();
  }
}

module.exports = { countSignInAndRefresh };

if (require.main === module) {
  countSignInAndRefresh({ main: process.env.BENCH_MAIN ?? MAIN })
    .then(({ signIn, refresh }) => {
      for (const [name, counted] of [['POST /signin', signIn], ['POST /refresh', refresh]]) {
        console.log(`${name}: ${counted.statements.length} statements, ${counted.roundTrips} round trips`);
        for (const line of describeStatements(counted.statements)) console.log(line);
      }
    })
    .catch((error) => {
      console.error(error);
      process.exit(1);
    });
}
