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

const USER_COLUMNS = {
  postgres: "SELECT column_name AS name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'users'",
  sqlite: "SELECT name FROM pragma_table_info('users')",
};

/** The migration CLI through ormconfig.ts (built to dist/ormconfig.js by `npm test`'s build step). */
describe.each(DATABASES)('migrations through ormconfig.ts on %s', (kind) => {
  let database: TestDatabase;

  beforeAll(async () => {
    if (!existsSync(ORMCONFIG)) throw new Error(`${ORMCONFIG} is missing: run npm run build (npm test does)`);
    database = await createTestDatabase(kind);
  });

  afterAll(async () => database?.drop());

  it('applies, shows and reverts the schema, one migration at a time', async () => {
    const tables = async () => ((await sql(database, TABLES[kind])) as { name: string }[]).map((t) => t.name);
    const userColumns = async () => ((await sql(database, USER_COLUMNS[kind])) as { name: string }[]).map((c) => c.name);
    // Read from the schema: whether mail_outbox.user_id may hold NULL (a goodbye outlives its account).
    const outboxUserIdNullable = async () => {
      if (kind === 'sqlite') {
        const columns = (await sql(database, 'PRAGMA table_info(mail_outbox)')) as { name: string; notnull: number }[];
        return columns.find((column) => column.name === 'user_id')!.notnull === 0;
      }
      const [column] = (await sql(database, "SELECT is_nullable FROM information_schema.columns WHERE table_name = 'mail_outbox' AND column_name = 'user_id'")) as { is_nullable: string }[];
      return column.is_nullable === 'YES';
    };
    const shown = typeorm('migration:show', database.url);
    expect(shown).toMatch(/\[ \] CreateAuthTables1764080000000/);
    expect(shown).toMatch(/\[ \] MailOutboxAndEmailVerification1764090000000/);
    expect(shown).toMatch(/\[ \] SessionsAndRefreshTokens1764100000000/);
    expect(shown).toMatch(/\[ \] SigningKeys1764110000000/);
    expect(shown).toMatch(/\[ \] SecondFactor1764120000000/);
    expect(shown).toMatch(/\[ \] CanonicalEmails1764130000000/);
    expect(shown).toMatch(/\[ \] RolesAndAuditEvents1764140000000/);
    expect(shown).toMatch(/\[ \] AccountSelfService1764150000000/);

    typeorm('migration:run', database.url);
    const applied = typeorm('migration:show', database.url);
    expect(applied).toMatch(/\[X\] .*CreateAuthTables1764080000000/);
    expect(applied).toMatch(/\[X\] .*MailOutboxAndEmailVerification1764090000000/);
    expect(applied).toMatch(/\[X\] .*SessionsAndRefreshTokens1764100000000/);
    expect(applied).toMatch(/\[X\] .*SigningKeys1764110000000/);
    expect(applied).toMatch(/\[X\] .*SecondFactor1764120000000/);
    expect(applied).toMatch(/\[X\] .*CanonicalEmails1764130000000/);
    expect(applied).toMatch(/\[X\] .*RolesAndAuditEvents1764140000000/);
    expect(applied).toMatch(/\[X\] .*AccountSelfService1764150000000/);
    expect(applied).toMatch(/\[X\] .*OidcIdentities1764160000000/);
    expect(await tables()).toEqual(
      expect.arrayContaining([
        'migrations',
        'users',
        'password_reset_tokens',
        'email_verification_tokens',
        'mail_outbox',
        'user_sessions',
        'refresh_tokens',
        'signing_keys',
        'totp_factors',
        'recovery_codes',
        'mfa_challenges',
        'auth_events',
        'email_change_tokens',
        'identities',
        'oidc_states',
        'oidc_exchange_codes',
      ]),
    );
    expect(await userColumns()).toEqual(expect.arrayContaining(['is_verified', 'verified_at', 'mfa_enabled', 'roles', 'has_password']));
    // A goodbye notice outlives its account: an outbox row may belong to none.
    await sql(database, "INSERT INTO mail_outbox (kind, user_id, recipient, status, attempts, next_attempt_at, created_at) VALUES ('account-deleted', NULL, 'gone@example.com', 'pending', 0, $1, $2)", [new Date().toISOString(), new Date().toISOString()]);
    expect(await outboxUserIdNullable()).toBe(true);

    typeorm('migration:revert', database.url);
    expect(await tables()).not.toContain('identities');
    expect(await userColumns()).not.toContain('has_password');

    typeorm('migration:revert', database.url);
    expect(await tables()).not.toContain('email_change_tokens');
    expect(await sql(database, 'SELECT id FROM mail_outbox WHERE user_id IS NULL')).toEqual([]);
    expect(await outboxUserIdNullable()).toBe(false);

    typeorm('migration:revert', database.url);
    expect(await tables()).not.toContain('auth_events');
    expect(await userColumns()).not.toContain('roles');

    typeorm('migration:revert', database.url); // CanonicalEmails: nothing to undo
    expect(await tables()).toContain('totp_factors');

    typeorm('migration:revert', database.url);
    const withoutSecondFactor = await tables();
    expect(withoutSecondFactor).toContain('signing_keys');
    expect(withoutSecondFactor).not.toContain('totp_factors');
    expect(await userColumns()).not.toContain('mfa_enabled');

    typeorm('migration:revert', database.url);
    const withoutSigningKeys = await tables();
    expect(withoutSigningKeys).toContain('user_sessions');
    expect(withoutSigningKeys).not.toContain('signing_keys');

    typeorm('migration:revert', database.url);
    const withoutSessions = await tables();
    expect(withoutSessions).toEqual(expect.arrayContaining(['users', 'mail_outbox']));
    expect(withoutSessions).not.toContain('user_sessions');
    expect(withoutSessions).not.toContain('refresh_tokens');

    typeorm('migration:revert', database.url);
    const afterFirstRevert = await tables();
    expect(afterFirstRevert).toEqual(expect.arrayContaining(['users', 'password_reset_tokens']));
    expect(afterFirstRevert).not.toContain('mail_outbox');
    expect(afterFirstRevert).not.toContain('email_verification_tokens');
    const columnsLeft = await userColumns();
    expect(columnsLeft).toEqual(expect.arrayContaining(['email', 'hashed_password', 'token_version']));
    expect(columnsLeft).not.toContain('is_verified');
    expect(columnsLeft).not.toContain('verified_at');

    typeorm('migration:revert', database.url);
    const afterSecondRevert = await tables();
    expect(afterSecondRevert).not.toContain('users');
    expect(afterSecondRevert).not.toContain('password_reset_tokens');
  });

  it('keeps the password hashes of accounts made before OIDC, which count as having a password', async () => {
    typeorm('migration:run', database.url);
    typeorm('migration:revert', database.url); // OidcIdentities
    await sql(database, 'INSERT INTO users (email, username, username_canonical, hashed_password) VALUES ($1, $2, $3, $4)', ['kept@example.com', 'kept', 'kept', '$argon2id$kept']);
    typeorm('migration:run', database.url);
    const rows = await sql(database, "SELECT hashed_password, has_password FROM users WHERE email = 'kept@example.com'");
    expect(rows).toEqual([{ hashed_password: '$argon2id$kept', has_password: kind === 'postgres' ? true : 1 }]);
    await sql(database, "DELETE FROM users WHERE email = 'kept@example.com'");
  });

  it('rewrites emails stored before to their canonical form, unless another account has it', async () => {
    typeorm('migration:run', database.url);
    typeorm('migration:revert', database.url); // OidcIdentities
    typeorm('migration:revert', database.url); // AccountSelfService
    typeorm('migration:revert', database.url); // RolesAndAuditEvents
    typeorm('migration:revert', database.url); // back to the rows as the earlier code stored them
    const legacy = [
      ['ａｄａ@example.com', 'ada'], // fullwidth letters, lower-cased as they were
      ['bob@xn--bcher-kva.example', 'bob'],
      ['eve@example.com', 'eve'],
      ['ｅｖｅ@example.com', 'eve2'], // a look-alike of eve's, left alone
      ['plain@example.com', 'plain'],
    ];
    for (const [email, username] of legacy) {
      await sql(database, 'INSERT INTO users (email, username, username_canonical, hashed_password) VALUES ($1, $2, $3, $4)', [email, username, username, 'x']);
    }

    typeorm('migration:run', database.url);

    const rows = (await sql(database, 'SELECT username, email FROM users ORDER BY id')) as { username: string; email: string }[];
    expect(rows).toEqual([
      { username: 'ada', email: 'ada@example.com' },
      { username: 'bob', email: 'bob@bücher.example' },
      { username: 'eve', email: 'eve@example.com' },
      { username: 'eve2', email: 'ｅｖｅ@example.com' },
      { username: 'plain', email: 'plain@example.com' },
    ]);
  });
});
