import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createTestDatabase, DATABASES, sql, TestDatabase } from './support/databases';

const ROOT = join(__dirname, '..');
const TYPEORM_CLI = join(ROOT, 'node_modules', 'typeorm', 'cli.js');
const ORMCONFIG = join(ROOT, 'dist', 'ormconfig.js');

function typeorm(command: string, databaseUrl: string): string {
  const result = spawnSync(process.execPath, [TYPEORM_CLI, command, '-d', ORMCONFIG], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', DATABASE_URL: databaseUrl },
    encoding: 'utf8',
    timeout: 30_000,
  });
  if (result.status !== 0) throw new Error(`typeorm ${command} failed:\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

const TABLES = {
  postgres: "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
  sqlite: "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY 1",
};

/** The migration CLI through ormconfig.ts (built to dist/ormconfig.js by `npm test`'s build step). */
describe.each(DATABASES)('migrations through ormconfig.ts on %s', (kind) => {
  let database: TestDatabase;

  beforeAll(async () => {
    if (!existsSync(ORMCONFIG)) throw new Error(`${ORMCONFIG} is missing: run npm run build (npm test does)`);
    database = await createTestDatabase(kind);
  });

  afterAll(async () => database?.drop());

  it('applies, shows and reverts the schema', async () => {
    expect(typeorm('migration:show', database.url)).toMatch(/\[ \] CreateAuthTables1764080000000/);
    typeorm('migration:run', database.url);
    expect(typeorm('migration:show', database.url)).toMatch(/\[X\] .*CreateAuthTables1764080000000/);
    const tables = ((await sql(database, TABLES[kind])) as { name: string }[]).map((t) => t.name);
    expect(tables).toEqual(expect.arrayContaining(['migrations', 'password_reset_tokens', 'users']));

    typeorm('migration:revert', database.url);
    const after = ((await sql(database, TABLES[kind])) as { name: string }[]).map((t) => t.name);
    expect(after).not.toContain('users');
    expect(after).not.toContain('password_reset_tokens');
  });
});
