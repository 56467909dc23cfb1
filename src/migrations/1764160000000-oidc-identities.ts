import { MigrationInterface, QueryRunner, Table, TableColumn, TableIndex } from 'typeorm';
import { authName } from '../options/table-prefix';

/**
 * Sign-in with OpenID Connect: linked identities, authorization requests in flight and the one-time codes
 * they end with; users without a password (created through a provider), and pending second-factor
 * sign-ins that remember their first factor (`pwd` or `oidc`).
 */
export class OidcIdentities1764160000000 implements MigrationInterface {
  name = 'OidcIdentities1764160000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    const postgres = queryRunner.connection.driver.options.type === 'postgres';
    const timestamp = postgres ? 'timestamptz' : 'datetime';
    const now = postgres ? 'now()' : "(strftime('%Y-%m-%d %H:%M:%f', 'now'))";
    const userForeignKey = (table: string, column = 'user_id') => ({
      name: authName(`FK_${table}_${column}`),
      columnNames: [column],
      referencedTableName: authName('users'),
      referencedColumnNames: ['id'],
      onDelete: 'CASCADE',
    });
    const users = authName('users');
    await this.passwordNullable(queryRunner, true);
    // Every account so far signed up with a password.
    await queryRunner.addColumn(users, new TableColumn({ name: 'has_password', type: 'boolean', default: true }));
    await queryRunner.addColumn(
      authName('mfa_challenges'),
      new TableColumn({ name: 'first_factor', type: 'varchar', length: '8', default: "'pwd'" }),
    );
    await queryRunner.createTable(
      new Table({
        name: authName('identities'),
        columns: [
          { name: 'id', type: 'integer', isPrimary: true, isGenerated: true, generationStrategy: 'increment' },
          { name: 'user_id', type: 'integer' },
          { name: 'issuer', type: 'varchar', length: '255' },
          { name: 'subject', type: 'varchar', length: '255' },
          { name: 'provider', type: 'varchar', length: '32' },
          { name: 'email', type: 'varchar', length: '254', isNullable: true },
          { name: 'created_at', type: timestamp, default: now },
        ],
        indices: [
          new TableIndex({ name: authName('UQ_identities_issuer_subject'), columnNames: ['issuer', 'subject'], isUnique: true }),
          new TableIndex({ name: authName('IDX_identities_user_id'), columnNames: ['user_id'] }),
        ],
        foreignKeys: [userForeignKey('identities')],
      }),
    );
    await queryRunner.createTable(
      new Table({
        name: authName('oidc_states'),
        columns: [
          { name: 'id', type: 'integer', isPrimary: true, isGenerated: true, generationStrategy: 'increment' },
          { name: 'state_hash', type: 'varchar', length: '64' },
          { name: 'browser_hash', type: 'varchar', length: '64' },
          { name: 'provider', type: 'varchar', length: '32' },
          { name: 'redirect_uri', type: 'varchar', length: '2048' },
          { name: 'nonce', type: 'varchar', length: '64' },
          { name: 'code_verifier', type: 'varchar', length: '128' },
          { name: 'link_user_id', type: 'integer', isNullable: true },
          { name: 'expires_at', type: timestamp },
          { name: 'used_at', type: timestamp, isNullable: true },
          { name: 'created_at', type: timestamp, default: now },
        ],
        indices: [
          new TableIndex({ name: authName('UQ_oidc_states_state_hash'), columnNames: ['state_hash'], isUnique: true }),
          new TableIndex({ name: authName('IDX_oidc_states_expires_at'), columnNames: ['expires_at'] }),
        ],
        foreignKeys: [userForeignKey('oidc_states', 'link_user_id')],
      }),
    );
    await queryRunner.createTable(
      new Table({
        name: authName('oidc_exchange_codes'),
        columns: [
          { name: 'id', type: 'integer', isPrimary: true, isGenerated: true, generationStrategy: 'increment' },
          { name: 'user_id', type: 'integer' },
          { name: 'token_hash', type: 'varchar', length: '64' },
          { name: 'browser_hash', type: 'varchar', length: '64' },
          { name: 'expires_at', type: timestamp },
          { name: 'used_at', type: timestamp, isNullable: true },
          { name: 'created_at', type: timestamp, default: now },
        ],
        indices: [
          new TableIndex({ name: authName('UQ_oidc_exchange_codes_token_hash'), columnNames: ['token_hash'], isUnique: true }),
          new TableIndex({ name: authName('IDX_oidc_exchange_codes_user_id'), columnNames: ['user_id'] }),
        ],
        foreignKeys: [userForeignKey('oidc_exchange_codes')],
      }),
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropTable(authName('oidc_exchange_codes'));
    await queryRunner.dropTable(authName('oidc_states'));
    await queryRunner.dropTable(authName('identities'));
    await queryRunner.dropColumn(authName('mfa_challenges'), 'first_factor');
    await queryRunner.dropColumn(authName('users'), 'has_password');
    // Accounts created through a provider have no password; they cannot go back to a schema that needs one.
    await queryRunner.query(`DELETE FROM "${authName('users')}" WHERE "hashed_password" IS NULL`);
    await this.passwordNullable(queryRunner, false);
  }

  /**
   * On PostgreSQL one ALTER: TypeORM's changeColumn drops and adds the column there, which would lose every
   * stored hash. SQLite cannot alter a column; its changeColumn rebuilds the table with the rows copied.
   */
  private async passwordNullable(queryRunner: QueryRunner, nullable: boolean): Promise<void> {
    const users = authName('users');
    if (queryRunner.connection.driver.options.type === 'postgres') {
      await queryRunner.query(`ALTER TABLE "${users}" ALTER COLUMN "hashed_password" ${nullable ? 'DROP' : 'SET'} NOT NULL`);
      return;
    }
    await queryRunner.changeColumn(
      users,
      'hashed_password',
      new TableColumn({ name: 'hashed_password', type: 'varchar', length: '255', isNullable: nullable }),
    );
  }
}
