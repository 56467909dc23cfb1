import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';

export type DatabaseKind = 'postgres' | 'sqlite';

/** The server the PostgreSQL runs use; each test file makes its own database on it and drops it after. */
export const TEST_POSTGRES_URL = process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** Which databases the e2e matrix covers; `TEST_DATABASES=sqlite npm test` runs without PostgreSQL. */
export const DATABASES = (process.env.TEST_DATABASES ?? 'postgres,sqlite').split(',') as DatabaseKind[];

export interface TestDatabase {
  kind: DatabaseKind;
  /** Value for DATABASE_URL. */
  url: string;
  drop(): Promise<void>;
}

export async function createTestDatabase(kind: DatabaseKind): Promise<TestDatabase> {
  const name = `auth_test_${process.pid}_${randomBytes(4).toString('hex')}`;
  if (kind === 'sqlite') {
    const path = join(tmpdir(), `${name}.sqlite`);
    return {
      kind,
      url: `sqlite:${path}`,
      drop: async () => {
        for (const suffix of ['', '-wal', '-shm']) rmSync(path + suffix, { force: true });
      },
    };
  }
  await withAdminClient((client) => client.query(`CREATE DATABASE ${name}`));
  const url = new URL(TEST_POSTGRES_URL);
  url.pathname = `/${name}`;
  return {
    kind,
    url: url.toString(),
    drop: () => withAdminClient((client) => client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).then(() => undefined),
  };
}

/** Runs SQL straight against a test database, for arranging states the API cannot reach (inactive users). */
export async function sql(database: TestDatabase, statement: string, params: unknown[] = []): Promise<unknown[]> {
  if (database.kind === 'postgres') {
    const client = new Client({ connectionString: database.url });
    await client.connect();
    try {
      return (await client.query(statement, params)).rows;
    } finally {
      await client.end();
    }
  }
  const Sqlite = (await import('better-sqlite3')).default;
  const db = new Sqlite(database.url.slice('sqlite:'.length));
  try {
    const sqliteStatement = db.prepare(statement.replace(/\$\d+/g, '?'));
    const sqliteParams = params.map((p) => (typeof p === 'boolean' ? Number(p) : p));
    return sqliteStatement.reader ? sqliteStatement.all(...sqliteParams) : (sqliteStatement.run(...sqliteParams), []);
  } finally {
    db.close();
  }
}

async function withAdminClient<T>(work: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: TEST_POSTGRES_URL });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}
