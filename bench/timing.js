#!/usr/bin/env node
// npm run bench:timing: do response times tell which emails have accounts? The built app on a fresh
// PostgreSQL database; 50 alternating requests per pair, one at a time; medians and their ratio.
//   BENCH_DATABASE_URL   PostgreSQL server (default postgres://postgres@127.0.0.1:5432/test)
'use strict';
const { randomBytes } = require('node:crypto');
const { mkdtempSync, rmSync } = require('node:fs');
const os = require('node:os');
const { join } = require('node:path');
const { freshPostgresDatabase, startApp } = require('./support');

const SERVER_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const ROUNDS = 50;

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  return (sorted[(sorted.length - 1) >> 1] + sorted[sorted.length >> 1]) / 2;
};

async function timed(base, path, body) {
  const started = process.hrtime.bigint();
  const res = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  await res.arrayBuffer();
  return { ms: Number(process.hrtime.bigint() - started) / 1e6, status: res.status };
}

async function pair(base, path, known, unknown) {
  const a = [];
  const b = [];
  for (let i = 0; i < ROUNDS; i++) {
    const first = i % 2 === 0;
    const x = await timed(base, path, first ? known : unknown);
    const y = await timed(base, path, first ? unknown : known);
    (first ? a : b).push(x.ms);
    (first ? b : a).push(y.ms);
    if (x.status !== y.status) throw new Error(`${path}: statuses differ (${x.status} vs ${y.status})`);
  }
  return { known: median(a), unknown: median(b) };
}

(async () => {
  const database = await freshPostgresDatabase(SERVER_URL, `auth_timing_${process.pid}`);
  const cwd = mkdtempSync(join(os.tmpdir(), 'auth-timing-'));
  const env = {
    ...process.env,
    DATABASE_URL: database.url,
    JWT_SECRET: randomBytes(48).toString('base64'),
    RATE_LIMIT_PER_MINUTE: '0',
    SIGNIN_MAX_FAILURES: '100',
    PASSWORD_RESET_MAILS_PER_HOUR: '100',
    VERIFICATION_MAILS_PER_HOUR: '100',
    MAIL_REQUESTS_PER_ACCOUNT_PER_HOUR: '1000',
  };
  const { base, stop } = await startApp({ env, port: 3970, cwd, stdio: ['ignore', 'ignore', 'inherit'] });
  try {
    const email = 'timing@example.com';
    const signup = await fetch(`${base}/api/v1/auth/signup`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email, username: 'timekeeper', password: 'an unrelated passphrase 9' }),
    });
    if (signup.status !== 201) throw new Error(`sign-up failed: ${signup.status} ${await signup.text()}`);
    // Warm-up: JIT, connection pool, prepared paths.
    for (let i = 0; i < 10; i++) await timed(base, '/api/v1/auth/forgot-password', { email: 'warm@example.com' });

    const signin = await pair(base, '/api/v1/auth/signin', { email, password: 'wrong password 1' }, { email: 'nobody@example.com', password: 'wrong password 1' });
    const forgot = await pair(base, '/api/v1/auth/forgot-password', { email }, { email: 'nobody@example.com' });
    // The account is not verified yet, so each request for it queues a new link.
    const resend = await pair(base, '/api/v1/auth/resend-verification', { email }, { email: 'nobody@example.com' });

    console.log(`node ${process.version}, ${os.cpus().length} cores; PostgreSQL; ${ROUNDS} alternating requests per pair, medians`);
    for (const [name, r] of [['sign-in, wrong password', signin], ['forgot-password', forgot], ['resend-verification', resend]]) {
      const ratio = r.known / r.unknown;
      console.log(
        `${name.padEnd(24)} known ${r.known.toFixed(2).padStart(7)} ms   unknown ${r.unknown.toFixed(2).padStart(7)} ms   ratio ${ratio.toFixed(3)}   ${Math.abs(ratio - 1) <= 0.1 ? 'within 10 %' : 'OUTSIDE 10 %'}`,
      );
    }
  } finally {
    await stop();
    rmSync(cwd, { recursive: true, force: true });
    await database.drop();
  }
})().catch((error) => {
  console.error(error);
  process.exit(1);
});
