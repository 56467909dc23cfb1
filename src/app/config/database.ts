import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type * as Pg from 'pg';
import { DataSource, type DataSourceOptions } from 'typeorm';
import { AUTH_ENTITIES, AUTH_MIGRATIONS } from '../..';
import type { DatabaseTarget } from './database-url';

/**
 * node-postgres stops waiting for a query after `query_timeout` but keeps the connection, which still
 * expects that answer: the pool hands it out again and every query on it waits behind the lost one
 * (TypeORM's ROLLBACK of the failed transaction first, a second timeout). Closed instead, it fails what
 * is queued on it at once and leaves the pool (pg-pool drops a client whose connection ended).
 */
function clientClosedOnReadTimeout(pg: typeof Pg): typeof Pg.Client {
  const query = pg.Client.prototype.query as (this: Pg.Client, ...args: unknown[]) => unknown;
  class ClosedOnReadTimeout extends pg.Client {}
  ClosedOnReadTimeout.prototype.query = function (this: Pg.Client, ...args: unknown[]) {
    const result = query.apply(this, args);
    if (result instanceof Promise) {
      result.catch((error: Error) => {
        if (error.message === 'Query read timeout') this.connection.stream.destroy();
      });
    }
    return result;
  } as Pg.Client['query'];
  return ClosedOnReadTimeout;
}

/**
 * A bounded pool with timeouts, so a database that went away or went silent fails a request (503) within
 * one wait for a connection plus one read timeout, about 4 s, instead of piling requests up. Auth
 * statements are single-row reads and writes of a few milliseconds; migrations get none of these limits.
 */
function postgresPool(): object {
  return {
    max: 10,
    // Connecting, PostgreSQL's greeting included, or waiting for a free connection of the pool.
    connectionTimeoutMillis: 2_000,
    // A database that still answers cancels a statement this slow itself…
    statement_timeout: 1_500,
    // …one that went silent (a partition, a frozen host) cannot, so the client stops waiting a little later.
    query_timeout: 2_000,
    Client: clientClosedOnReadTimeout(require('pg') as typeof Pg),
  };
}

/**
 * The DataSource options of the app, the tests and, with `forMigrations`, of the migration CLI
 * (`ormconfig.ts`) and the start-up migration run: a migration may take minutes on a large table, a
 * request must not.
 */
export function dataSourceOptions(target: DatabaseTarget, options: { forMigrations?: boolean } = {}): DataSourceOptions {
  const common = { entities: AUTH_ENTITIES, migrations: AUTH_MIGRATIONS, synchronize: false };
  if (target.type === 'postgres') {
    return { ...common, type: 'postgres', url: target.url, ...(options.forMigrations ? {} : { extra: postgresPool() }) };
  }
  if (target.path !== ':memory:') mkdirSync(dirname(target.path), { recursive: true });
  return { ...common, type: 'better-sqlite3', database: target.path, enableWAL: true, timeout: 5_000 };
}

/** Applies pending migrations on a connection of their own, closed again before the app's pool opens. */
export async function runPendingMigrations(target: DatabaseTarget): Promise<void> {
  const dataSource = await new DataSource(dataSourceOptions(target, { forMigrations: true })).initialize();
  try {
    await dataSource.runMigrations({ transaction: 'all' });
  } finally {
    await dataSource.destroy();
  }
}
