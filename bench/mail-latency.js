#!/usr/bin/env node
// Sign-up and forgot-password latency of the standalone app while its SMTP server is up, refusing
// connections, slow (3 s to accept each message) or hung (accepts the connection, never greets). The
// requests only write to the outbox, so the four should match. The app runs in its own process on a
// fresh SQLite file, or with BENCH_POSTGRES_URL (a server it may create databases on) on a throwaway
// PostgreSQL database; requests go one at a time.
// Usage: [BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test] npm run bench:mail [-- requests-per-route]
'use strict';
const { mkdtempSync, rmSync } = require('node:fs');
const { createServer } = require('node:net');
const { tmpdir } = require('node:os');
const { join } = require('node:path');
const { SMTPServer } = require('smtp-server');
const { freshPostgresDatabase, startApp } = require('./support');

const requests = Number(process.argv[2] ?? 30);
const postgresServer = process.env.BENCH_POSTGRES_URL;

/** A DATABASE_URL of its own for one run, and how to drop it. */
function freshDatabase(dir, port) {
  if (!postgresServer) return { url: `sqlite:${join(dir, 'bench.sqlite')}`, drop: async () => undefined };
  return freshPostgresDatabase(postgresServer, `bench_mail_${process.pid}_${port}`);
}

function listen(server) {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.server ?? server).address().port)));
}

async function smtpServers() {
  let delivered = 0;
  const up = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData: (stream, _session, callback) => {
      stream.resume();
      stream.on('end', () => {
        delivered += 1;
        callback();
      });
    },
  });
  const slow = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData: (stream, _session, callback) => {
      stream.resume();
      stream.on('end', () => setTimeout(callback, 3000));
    },
  });
  const hung = createServer(() => undefined);
  const refusing = createServer();
  const refusingPort = await listen(refusing);
  await new Promise((resolve) => refusing.close(resolve));
  return {
    targets: [
      ['up', `smtp://127.0.0.1:${await listen(up)}`],
      ['refusing', `smtp://127.0.0.1:${refusingPort}`],
      ['slow (3 s)', `smtp://127.0.0.1:${await listen(slow)}`],
      ['hung', `smtp://127.0.0.1:${await listen(hung)}`],
    ],
    delivered: () => delivered,
    close: () => {
      for (const server of [up, slow, hung]) server.close(() => undefined);
    },
  };
}

async function timed(url, body) {
  const started = performance.now();
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  await res.arrayBuffer();
  if (!res.ok) throw new Error(`${url} answered ${res.status}`);
  return performance.now() - started;
}

function stats(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  return `${at(0.5).toFixed(1).padStart(6)} ${at(0.95).toFixed(1).padStart(6)}`;
}

async function measure(name, smtpUrl, port) {
  const dir = mkdtempSync(join(tmpdir(), 'auth-bench-mail-'));
  const database = await freshDatabase(dir, port);
  const env = {
    PATH: process.env.PATH,
    JWT_SECRET: 'benchmark-secret-of-at-least-32-bytes-long',
    RATE_LIMIT_PER_MINUTE: '0',
    SMTP_URL: smtpUrl,
    DATABASE_URL: database.url,
  };
  const { base, stop } = await startApp({ env, port, cwd: dir });
  try {
    const run = `${port}${Date.now()}`;
    const emails = Array.from({ length: requests + 1 }, (_, i) => `bench${run}x${i}@example.com`);
    // One warm-up request of each kind, not counted.
    const body = (email, i) => ({ email, username: `bench${run}x${i}`, password: 'benchmark password' });
    await timed(`${base}/api/v1/auth/signup`, body(emails[0], 0));
    await timed(`${base}/api/v1/auth/forgot-password`, { email: emails[0] });
    const signup = [];
    const forgot = [];
    for (let i = 1; i <= requests; i++) signup.push(await timed(`${base}/api/v1/auth/signup`, body(emails[i], i)));
    for (let i = 1; i <= requests; i++) forgot.push(await timed(`${base}/api/v1/auth/forgot-password`, { email: emails[i] }));
    return { name, signup, forgot };
  } finally {
    await stop();
    await database.drop();
    rmSync(dir, { recursive: true, force: true });
  }
}

(async () => {
  const smtp = await smtpServers();
  const rows = [];
  try {
    for (const [i, [name, url]] of smtp.targets.entries()) rows.push(await measure(name, url, 3950 + i));
  } finally {
    smtp.close();
  }
  const database = postgresServer ? 'postgres' : 'sqlite';
  console.log(`node ${process.version}, ${require('node:os').cpus().length} cores, ${database}, ${requests} sequential requests per route`);
  console.log('SMTP        | signup median p95 ms | forgot-password median p95 ms');
  for (const { name, signup, forgot } of rows) console.log(`${name.padEnd(11)} | ${stats(signup).padStart(20)} | ${stats(forgot).padStart(30)}`);
  console.log(`delivered to the healthy server while measuring: ${smtp.delivered()} of ${2 * (requests + 1)}`);
  process.exit(0);
})().catch((error) => {
  console.error(error);
  process.exit(1);
});
