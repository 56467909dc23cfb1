#!/usr/bin/env node
// npm run bench:signing: what the signing algorithm costs on the guarded path. One app per algorithm
// (HS256, EdDSA, ES256) on fresh PostgreSQL databases, rate limits off; GET /health/live (the floor) and
// GET /api/v1/auth/me alternate on each, three rounds, each figure the median round. Then, in this
// process, one token verification with node:crypto (what the module does) and with jose (WebCrypto),
// with libuv's pool idle and busy with argon2, which is why the module does not verify through jose.
//   BENCH_SECONDS (default 5)   duration of each measured phase
//   BENCH_DATABASE_URL          a PostgreSQL server URL (default postgres://postgres@127.0.0.1:5432/test)
'use strict';
const { randomBytes } = require('node:crypto');
const { mkdtempSync, rmSync } = require('node:fs');
const os = require('node:os');
const { join } = require('node:path');
const autocannon = require('autocannon');
const { freshPostgresDatabase, startApp } = require('./support');

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const SERVER_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const ALGORITHMS = ['HS256', 'EdDSA', 'ES256'];

const cannon = (options) =>
  new Promise((resolve, reject) => autocannon({ duration: SECONDS, connections: 50, ...options }, (e, r) => (e ? reject(e) : resolve(r))));
const median = (rounds) => [...rounds].sort((a, b) => a.requests.average - b.requests.average)[rounds.length >> 1];

async function start(algorithm, port) {
  const database = await freshPostgresDatabase(SERVER_URL, `auth_bench_${algorithm.toLowerCase()}_${process.pid}`);
  const cwd = mkdtempSync(join(os.tmpdir(), 'auth-bench-'));
  const env = {
    ...process.env,
    NODE_ENV: 'production',
    DATABASE_URL: database.url,
    JWT_SECRET: randomBytes(48).toString('base64'),
    JWT_ALGORITHM: algorithm,
    RATE_LIMIT_PER_MINUTE: '0',
  };
  const app = await startApp({ env, port, cwd, stdio: ['ignore', 'ignore', 'inherit'] });
  const res = await fetch(`${app.base}/api/v1/auth/signup`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: 'load@example.com', username: 'loadtester', password: 'benchmark password 1' }),
  });
  if (res.status !== 201) throw new Error(`sign-up failed on ${algorithm}: ${res.status}`);
  const { access_token: token } = await res.json();
  return {
    algorithm,
    ...app,
    headers: { authorization: `Bearer ${token}` },
    close: async () => {
      await app.stop();
      rmSync(cwd, { recursive: true, force: true });
      await database.drop();
    },
  };
}

/** Microseconds per verification, averaged over `n`. */
async function perVerify(verify, n) {
  const started = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await verify();
  return Number(process.hrtime.bigint() - started) / 1e3 / n;
}

async function verificationCosts() {
  const { createHmac, createSecretKey, generateKeyPairSync, timingSafeEqual, verify } = require('node:crypto');
  const jose = await import('jose');
  const argon2 = require('argon2');
  const secret = createSecretKey(randomBytes(32));
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const claims = { sub: '1', exp: Math.floor(Date.now() / 1000) + 600 };
  const hs = await new jose.SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).sign(secret);
  const ed = await new jose.SignJWT(claims).setProtectedHeader({ alg: 'EdDSA' }).sign(privateKey);
  const parts = (t) => [t.slice(0, t.lastIndexOf('.')), Buffer.from(t.slice(t.lastIndexOf('.') + 1), 'base64url')];
  const cases = {
    'HS256 node:crypto': () => {
      const [input, signature] = parts(hs);
      return timingSafeEqual(createHmac('sha256', secret).update(input).digest(), signature);
    },
    'HS256 jose': () => jose.jwtVerify(hs, secret),
    'EdDSA node:crypto': () => {
      const [input, signature] = parts(ed);
      return verify(null, Buffer.from(input), publicKey, signature);
    },
    'EdDSA jose': () => jose.jwtVerify(ed, publicKey),
  };
  const idle = {};
  for (const [name, fn] of Object.entries(cases)) idle[name] = await perVerify(fn, 5000);
  const hash = await argon2.hash('x', { type: argon2.argon2id, memoryCost: 19456, timeCost: 2 });
  let busy = true;
  const load = Array.from({ length: Number(process.env.UV_THREADPOOL_SIZE ?? 4) }, async () => {
    while (busy) await argon2.verify(hash, 'x');
  });
  const loaded = {};
  for (const [name, fn] of Object.entries(cases)) loaded[name] = await perVerify(fn, name.endsWith('jose') ? 50 : 5000);
  busy = false;
  await Promise.all(load);
  return Object.keys(cases).map((name) => `${name.padEnd(20)} ${idle[name].toFixed(1).padStart(8)} us idle  ${loaded[name].toFixed(1).padStart(9)} us with the pool busy hashing`);
}

(async () => {
  const apps = [];
  try {
    for (const [i, algorithm] of ALGORITHMS.entries()) apps.push(await start(algorithm, 3960 + i));
    const rounds = new Map(apps.map((app) => [app.algorithm, { live: [], me: [] }]));
    for (const app of apps) await cannon({ url: `${app.base}/api/v1/auth/me`, headers: app.headers, duration: 2 }); // warm-up
    for (let round = 0; round < 3; round++) {
      for (const app of round % 2 ? [...apps].reverse() : apps) {
        rounds.get(app.algorithm).live.push(await cannon({ url: `${app.base}/health/live` }));
        rounds.get(app.algorithm).me.push(await cannon({ url: `${app.base}/api/v1/auth/me`, headers: app.headers }));
      }
    }
    const cpu = os.cpus();
    console.log(`node ${process.version}, ${cpu.length} x ${cpu[0].model}; PostgreSQL; ${SECONDS} s a phase, median of 3 rounds`);
    for (const { algorithm } of apps) {
      const live = median(rounds.get(algorithm).live);
      const me = median(rounds.get(algorithm).me);
      const ratio = me.requests.average / live.requests.average;
      console.log(
        `${algorithm.padEnd(6)} floor ${String(Math.round(live.requests.average)).padStart(6)} req/s  /me ${String(Math.round(me.requests.average)).padStart(6)} req/s ` +
          `p99 ${String(me.latency.p99).padStart(3)} ms  ratio to floor ${ratio.toFixed(2)}${me.non2xx + me.errors ? `  (${me.non2xx + me.errors} errors!)` : ''}`,
      );
    }
  } finally {
    for (const app of apps) await app.close();
  }
  console.log('one verification:');
  for (const line of await verificationCosts()) console.log(`  ${line}`);
})().catch((error) => {
  console.error(error);
  process.exit(1);
});
