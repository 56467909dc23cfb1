#!/usr/bin/env node
// Compares the standalone app under Fastify and Express, in one run on this machine: the bare route
// (/health/live) and the guarded one (/api/v1/auth/me). The app runs in its own process; autocannon
// drives it from this one. Usage: npm run bench:adapters [-- seconds]
'use strict';
const { mkdtempSync, rmSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');
const autocannon = require('autocannon');
const { startApp } = require('./support');

const seconds = Number(process.argv[2] ?? 5);

function run(url, headers) {
  return new Promise((resolve, reject) => {
    autocannon({ url, connections: 50, duration: seconds, headers }, (err, result) => (err ? reject(err) : resolve(result)));
  });
}

async function measure(adapter, port) {
  const dir = mkdtempSync(join(tmpdir(), 'auth-bench-'));
  const env = {
    ...process.env,
    HTTP_ADAPTER: adapter,
    JWT_SECRET: 'benchmark-secret-of-at-least-32-bytes-long',
    RATE_LIMIT_PER_MINUTE: '0',
    DATABASE_URL: `sqlite:${join(dir, 'bench.sqlite')}`,
  };
  const { base, stop } = await startApp({ env, port, cwd: dir });
  try {
    const signup = await fetch(`${base}/api/v1/auth/signup`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'load@example.com', username: 'loadtester', password: 'benchmark password' }),
    });
    if (signup.status !== 201) throw new Error(`sign-up failed: ${signup.status} ${await signup.text()}`);
    const { access_token } = await signup.json();
    await run(`${base}/health/live`, {}); // warm-up
    const live = await run(`${base}/health/live`, {});
    const me = await run(`${base}/api/v1/auth/me`, { authorization: `Bearer ${access_token}` });
    return { adapter, live, me };
  } finally {
    await stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

(async () => {
  const rows = [];
  for (const [i, adapter] of ['fastify', 'express'].entries()) rows.push(await measure(adapter, 3900 + i));
  console.log(`node ${process.version}, ${require('node:os').cpus().length} cores, ${seconds} s per route, 50 connections`);
  console.log('adapter  | /health/live req/s | p99 ms | /me req/s | p99 ms');
  for (const { adapter, live, me } of rows) {
    console.log(
      `${adapter.padEnd(8)} | ${String(Math.round(live.requests.average)).padStart(18)} | ${String(live.latency.p99).padStart(6)} | ` +
        `${String(Math.round(me.requests.average)).padStart(9)} | ${String(me.latency.p99).padStart(6)}`,
    );
  }
  const [fastify, express] = rows;
  console.log(`fastify/express: live ${(fastify.live.requests.average / express.live.requests.average).toFixed(2)}x, me ${(fastify.me.requests.average / express.me.requests.average).toFixed(2)}x`);
})().catch((error) => {
  console.error(error);
  process.exit(1);
});
