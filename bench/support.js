'use strict';
// What every benchmark script needs: the built app in a process of its own, and throwaway databases.
const { spawn } = require('node:child_process');
const { join } = require('node:path');
const { Client } = require('pg');

const MAIN = join(__dirname, '..', 'dist', 'src', 'app', 'main.js');

/**
 * Starts `npm start`'s entry point (or another build's main.js, `main`) with `env` on `port` and resolves
 * once /health/live answers.
 */
async function startApp({ env, port, cwd, stdio = 'ignore', main = MAIN }) {
  const child = spawn(process.execPath, [main], { cwd, env: { ...env, PORT: String(port) }, stdio });
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error(`app exited with ${child.exitCode}`);
    try {
      if ((await fetch(`${base}/health/live`)).ok) return { child, base, stop: () => stop(child) };
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  child.kill('SIGKILL');
  throw new Error('app did not start within 30 s');
}

function stop(child) {
  if (child.exitCode !== null) return Promise.resolve();
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  return exited;
}

async function onPostgresServer(serverUrl, statement) {
  const client = new Client({ connectionString: serverUrl });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}

/** Creates database `name` on the server and returns its URL and how to drop it. */
async function freshPostgresDatabase(serverUrl, name) {
  await onPostgresServer(serverUrl, `CREATE DATABASE ${name}`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return { url: url.toString(), drop: () => onPostgresServer(serverUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) };
}

module.exports = { MAIN, startApp, freshPostgresDatabase };
