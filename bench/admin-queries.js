#!/usr/bin/env node
// npm run bench:admin: the admin API's paging, search and event filters on PostgreSQL with 100,000 users
// and 1,000,000 audit events. The built app (dist/src/app/main.js) on a fresh database, seeded with
// generate_series in SQL, then each admin query asked RUNS times over HTTP, one at a time. See BENCHMARKS.md.
//   BENCH_DATABASE_URL   a PostgreSQL server URL (default postgres://postgres@127.0.0.1:5432/test); a fresh
//                        database is made on it and dropped after
//   USERS (default 100000), EVENTS (default 1000000), RUNS (default 30)
'use strict';
const { mkdtempSync, rmSync } = require('node:fs');
const os = require('node:os');
const { join } = require('node:path');
const { Client } = require('pg');
const { freshPostgresDatabase, startApp } = require('./support');

const SERVER_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const USERS = Number(process.env.USERS ?? 100_000);
const EVENTS = Number(process.env.EVENTS ?? 1_000_000);
const RUNS = Number(process.env.RUNS ?? 30);
const JWT_SECRET = 'admin-queries-benchmark-secret-0123456789abcdef';
const ADMIN = { email: 'bench-admin@example.com', username: 'benchadmin', password: 'bench admin phrase 42!' };
const SECONDS_BETWEEN_EVENTS = 30; // 1,000,000 events span about 347 days

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((sorted.length - 1) * p))];

async function seed(client) {
  const started = Date.now();
  // Usernames and emails as sign-up stores them; the hash is a placeholder nobody signs in with.
  await client.query(
    `INSERT INTO users (email, username, username_canonical, hashed_password, is_verified, roles, created_at, updated_at)
     SELECT 'user' || i || '@example.com', 'User' || i, 'user' || i, 'x', true, '', now() - (i || ' minutes')::interval, now()
     FROM generate_series(1, $1) AS i`,
    [USERS],
  );
  // Types in realistic proportions: sign-ins and refresh-era events common, admin events rare.
  await client.query(
    `INSERT INTO auth_events (type, user_id, session_id, ip, user_agent, created_at, details)
     SELECT CASE WHEN i % 1000 = 0 THEN 'role_granted'
                 WHEN i % 100 = 1 THEN 'password_changed'
                 WHEN i % 10 = 2 THEN 'signin_failed'
                 WHEN i % 10 = 3 THEN 'signout'
                 ELSE 'signin' END,
            1 + (i::bigint * 7919) % $2,
            md5(i::text)::uuid::text,
            '203.0.113.' || (i % 250),
            'Mozilla/5.0 (bench)',
            now() - ((($1 - i) * ${SECONDS_BETWEEN_EVENTS}) || ' seconds')::interval,
            CASE WHEN i % 10 = 2 THEN '{"reason":"invalid_credentials"}' ELSE NULL END
     FROM generate_series(1, $1) AS i`,
    [EVENTS, USERS],
  );
  await client.query('ANALYZE users');
  await client.query('ANALYZE auth_events');
  return Date.now() - started;
}

async function main() {
  const database = await freshPostgresDatabase(SERVER_URL, `bench_admin_${process.pid}`);
  const cwd = mkdtempSync(join(os.tmpdir(), 'bench-admin-'));
  const env = { PATH: process.env.PATH, DATABASE_URL: database.url, JWT_SECRET, RATE_LIMIT_PER_MINUTE: '0', NODE_ENV: 'production', LOG_LEVEL: 'error' };
  const port = 3400 + (process.pid % 500);
  const app = await startApp({ env, port, cwd });
  const client = new Client({ connectionString: database.url });
  await client.connect();
  try {
    const signup = await fetch(`${app.base}/api/v1/auth/signup`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(ADMIN) });
    if (signup.status !== 201) throw new Error(`sign-up answered ${signup.status}`);
    await client.query("UPDATE users SET roles = 'admin' WHERE email = $1", [ADMIN.email]);
    const seededMs = await seed(client);
    const signin = await fetch(`${app.base}/api/v1/auth/signin`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(ADMIN) });
    const token = (await signin.json()).access_token;
    const { rows } = await client.query('SELECT min(id)::int AS min, max(id)::int AS max FROM auth_events');
    const oldDay = new Date(Date.now() - 200 * 24 * 3600 * 1000);
    const dayAfter = new Date(oldDay.getTime() + 24 * 3600 * 1000);
    const midCursor = Math.round((rows[0].min + rows[0].max) / 2);
    const queries = [
      ['users, first page', '/admin/users?limit=50'],
      ['users, page after id 90,000', '/admin/users?limit=50&cursor=90000'],
      ['users, search one (user77777)', '/admin/users?query=user77777'],
      ['users, search broad (user1: 11,112 rows)', '/admin/users?query=user1&limit=50'],
      ['users, search broad, page after id 50,000', '/admin/users?query=user1&limit=50&cursor=50000'],
      ['users, search by email domain start (no match)', '/admin/users?query=zz'],
      ['events, first page', '/admin/events?limit=50'],
      ['events, page in the middle (cursor)', `/admin/events?limit=50&cursor=${midCursor}`],
      ['events, one user', '/admin/events?user_id=4242&limit=50'],
      ['events, one user, page 2', null],
      ['events, rare type (role_granted)', '/admin/events?type=role_granted&limit=50'],
      ['events, rare type, page in the middle', `/admin/events?type=role_granted&limit=50&cursor=${midCursor}`],
      ['events, one day 200 days ago', `/admin/events?from=${oldDay.toISOString()}&to=${dayAfter.toISOString()}&limit=50`],
      ['events, rare type within that day', `/admin/events?type=password_changed&from=${oldDay.toISOString()}&to=${dayAfter.toISOString()}&limit=50`],
      ['events, one user and type', '/admin/events?user_id=4242&type=signin&limit=50'],
      ['events, one user since 200 days ago', `/admin/events?user_id=4242&from=${oldDay.toISOString()}&limit=50`],
    ];
    const results = [];
    for (const [name, fixedPath] of queries) {
      let path = fixedPath;
      if (path === null) {
        const first = await (await fetch(`${app.base}/api/v1/auth/admin/events?user_id=4242&limit=5`, { headers: { Authorization: `Bearer ${token}` } })).json();
        path = `/admin/events?user_id=4242&limit=5&cursor=${first.next_cursor}`;
      }
      const times = [];
      let items = 0;
      for (let i = 0; i < RUNS + 3; i++) {
        const started = process.hrtime.bigint();
        const res = await fetch(`${app.base}/api/v1/auth${path}`, { headers: { Authorization: `Bearer ${token}` } });
        const body = await res.json();
        const ms = Number(process.hrtime.bigint() - started) / 1e6;
        if (res.status !== 200) throw new Error(`${path} answered ${res.status}: ${JSON.stringify(body)}`);
        items = body.items.length;
        if (i >= 3) times.push(ms); // the first three warm the caches and the connection pool
      }
      times.sort((a, b) => a - b);
      results.push({ name, items, p50: percentile(times, 0.5), p95: percentile(times, 0.95), max: times[times.length - 1] });
    }
    console.log(`seeded ${USERS.toLocaleString('en')} users and ${EVENTS.toLocaleString('en')} events in ${(seededMs / 1000).toFixed(1)} s; ${RUNS} requests each, sequential, over HTTP`);
    console.log('| query | items | p50 ms | p95 ms | max ms |');
    console.log('|---|---|---|---|---|');
    for (const r of results) console.log(`| ${r.name} | ${r.items} | ${r.p50.toFixed(1)} | ${r.p95.toFixed(1)} | ${r.max.toFixed(1)} |`);
    const slowest = results.reduce((a, b) => (b.p95 > a.p95 ? b : a));
    console.log(`slowest by p95: ${slowest.name} (${slowest.p95.toFixed(1)} ms)`);
    // The plans of the deep broad search and the mid-table event page, as UsersService.page and
    // AuditService.page build them.
    const plans = {
      'users: query=user1, cursor=50000': `SELECT * FROM users WHERE (email LIKE 'user1%' ESCAPE '\\' OR username_canonical LIKE 'user1%' ESCAPE '\\') AND id > 50000 ORDER BY id ASC LIMIT 51`,
      [`events: cursor=${midCursor}`]: `SELECT * FROM auth_events WHERE id < ${midCursor} ORDER BY id DESC LIMIT 51`,
      'events: one day 200 days ago': `SELECT * FROM auth_events WHERE created_at >= '${oldDay.toISOString()}' AND created_at < '${dayAfter.toISOString()}' ORDER BY id DESC LIMIT 51`,
    };
    for (const [name, statement] of Object.entries(plans)) {
      const plan = await client.query(`EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) ${statement}`);
      console.log(`\nplan, ${name}:\n${plan.rows.map((r) => `  ${r['QUERY PLAN']}`).join('\n')}`);
    }
  } finally {
    await client.end();
    await app.stop();
    rmSync(cwd, { recursive: true, force: true });
    await database.drop();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
