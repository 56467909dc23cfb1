'use strict';
// Counts what the app says to PostgreSQL per request, from the wire: a TCP proxy between the app and the
// server reads the frontend messages of the PostgreSQL protocol (v3) and records every statement (a
// simple Query, or an extended-protocol Execute with the text of the Parse before it) and every round
// trip (a Query or a Sync, each of which waits for ReadyForQuery). Nothing in the app is instrumented.
const net = require('node:net');

/** Frontend message types that matter here (PostgreSQL docs, "Message Formats"). */
const QUERY = 0x51; // 'Q'
const PARSE = 0x50; // 'P'
const EXECUTE = 0x45; // 'E'
const SYNC = 0x53; // 'S'

/**
 * Starts a proxy on a free loopback port in front of the server of `targetUrl`. Returns the URL to give
 * the app (same credentials and database, the proxy's port), the log of what went through, and `close`.
 */
async function startStatementProxy(targetUrl) {
  const target = new URL(targetUrl);
  /** Every statement and round trip, in order: `{ at, kind: 'statement' | 'roundtrip', sql? }`. */
  const log = [];
  const sockets = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port || 5432), target.hostname);
    sockets.add(client).add(upstream);
    let buffer = Buffer.alloc(0);
    let started = false; // the startup message has no type byte
    let lastParsed = '';
    client.on('data', (chunk) => {
      upstream.write(chunk);
      buffer = Buffer.concat([buffer, chunk]);
      for (;;) {
        if (!started) {
          if (buffer.length < 8) break;
          const length = buffer.readInt32BE(0);
          if (buffer.length < length) break;
          buffer = buffer.subarray(length);
          started = true;
          continue;
        }
        if (buffer.length < 5) break;
        const type = buffer[0];
        const length = buffer.readInt32BE(1);
        if (buffer.length < 1 + length) break;
        const body = buffer.subarray(5, 1 + length);
        const at = process.hrtime.bigint();
        if (type === QUERY) {
          log.push({ at, kind: 'statement', sql: cString(body, 0) });
          log.push({ at, kind: 'roundtrip' });
        } else if (type === PARSE) {
          lastParsed = cString(body, body.indexOf(0) + 1); // after the statement's name
        } else if (type === EXECUTE) {
          log.push({ at, kind: 'statement', sql: lastParsed });
        } else if (type === SYNC) {
          log.push({ at, kind: 'roundtrip' });
        }
        buffer = buffer.subarray(1 + length);
      }
    });
    upstream.on('data', (chunk) => client.write(chunk));
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = new URL(targetUrl);
  url.hostname = '127.0.0.1';
  url.port = String(server.address().port);
  return {
    url: url.toString(),
    log,
    close: () => {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

function cString(buffer, from) {
  const end = buffer.indexOf(0, from);
  return buffer.toString('utf8', from, end < 0 ? buffer.length : end);
}

/**
 * Sends `request()` `times` times, one after the other, and returns what the one with the fewest
 * statements sent to the database: the app's timers (the outbox poll, the key reload) can only add to a
 * request's window, never take from it, so the minimum is the request's own work.
 */
async function statementsPerRequest(proxy, times, request) {
  let best = null;
  for (let i = 0; i < times; i++) {
    const from = proxy.log.length;
    await request(i);
    await new Promise((resolve) => setTimeout(resolve, 20)); // work the app does right after answering
    const window = proxy.log.slice(from);
    const statements = window.filter((entry) => entry.kind === 'statement').map((entry) => entry.sql);
    const roundTrips = window.filter((entry) => entry.kind === 'roundtrip').length;
    if (!best || statements.length < best.statements.length) best = { statements, roundTrips };
  }
  return best;
}

/** One statement on a line, whitespace squeezed, cut to `width`. */
function describeStatements(statements, width = 110) {
  return statements.map((sql, i) => {
    const line = sql.replace(/\s+/g, ' ').trim();
    return `  ${String(i + 1).padStart(2)}. ${line.length > width ? `${line.slice(0, width - 1)}…` : line}`;
  });
}

module.exports = { startStatementProxy, statementsPerRequest, describeStatements };
