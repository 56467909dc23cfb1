import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { DataSourceOptions } from 'typeorm';
import { AUTH_ENTITIES, AUTH_MIGRATIONS } from '../..';
import type { DatabaseTarget } from './database-url';

/** The DataSource options shared by the app, the migration CLI (`ormconfig.ts`) and the tests. */
export function dataSourceOptions(target: DatabaseTarget, options: { migrationsRun?: boolean } = {}): DataSourceOptions {
  const common = {
    entities: AUTH_ENTITIES,
    migrations: AUTH_MIGRATIONS,
    migrationsRun: options.migrationsRun ?? false,
    synchronize: false,
  };
  if (target.type === 'postgres') {
    // A bounded pool and statement timeout: a stuck database fails requests instead of piling them up.
    return { ...common, type: 'postgres', url: target.url, extra: { max: 10, statement_timeout: 10_000, connectionTimeoutMillis: 5_000 } };
  }
  if (target.path !== ':memory:') mkdirSync(dirname(target.path), { recursive: true });
  return { ...common, type: 'better-sqlite3', database: target.path, enableWAL: true, timeout: 5_000 };
}
