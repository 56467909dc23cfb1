import { MigrationInterface, QueryRunner, Table, TableForeignKey, TableIndex } from 'typeorm';
import { authName } from '../options/table-prefix';

/**
 * Users and password reset tokens. Written once for PostgreSQL and SQLite through TypeORM's schema API;
 * the only difference is the timestamp type (PostgreSQL keeps the time zone, SQLite stores UTC text).
 */
export class CreateAuthTables1764080000000 implements MigrationInterface {
  name = 'CreateAuthTables1764080000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    const postgres = queryRunner.connection.driver.options.type === 'postgres';
    const timestamp = postgres ? 'timestamptz' : 'datetime';
    const now = postgres ? 'now()' : "(strftime('%Y-%m-%d %H:%M:%f', 'now'))";

    await queryRunner.createTable(
      new Table({
        name: authName('users'),
        columns: [
          { name: 'id', type: 'integer', isPrimary: true, isGenerated: true, generationStrategy: 'increment' },
          { name: 'email', type: 'varchar', length: '254' },
          { name: 'username', type: 'varchar', length: '50' },
          { name: 'username_canonical', type: 'varchar', length: '50' },
          { name: 'full_name', type: 'varchar', length: '100', isNullable: true },
          { name: 'hashed_password', type: 'varchar', length: '255' },
          { name: 'is_active', type: 'boolean', default: true },
          { name: 'token_version', type: 'integer', default: 0 },
          { name: 'created_at', type: timestamp, default: now },
          { name: 'updated_at', type: timestamp, default: now },
        ],
        indices: [
          new TableIndex({ name: authName('UQ_users_email'), columnNames: ['email'], isUnique: true }),
          new TableIndex({ name: authName('UQ_users_username_canonical'), columnNames: ['username_canonical'], isUnique: true }),
        ],
      }),
    );

    await queryRunner.createTable(
      new Table({
        name: authName('password_reset_tokens'),
        columns: [
          { name: 'id', type: 'integer', isPrimary: true, isGenerated: true, generationStrategy: 'increment' },
          { name: 'user_id', type: 'integer' },
          { name: 'token_hash', type: 'varchar', length: '64' },
          { name: 'expires_at', type: timestamp },
          { name: 'used_at', type: timestamp, isNullable: true },
          { name: 'created_at', type: timestamp, default: now },
        ],
        indices: [
          new TableIndex({ name: authName('UQ_password_reset_tokens_token_hash'), columnNames: ['token_hash'], isUnique: true }),
          new TableIndex({ name: authName('IDX_password_reset_tokens_user_id'), columnNames: ['user_id'] }),
        ],
        foreignKeys: [
          new TableForeignKey({
            name: authName('FK_password_reset_tokens_user_id'),
            columnNames: ['user_id'],
            referencedTableName: authName('users'),
            referencedColumnNames: ['id'],
            onDelete: 'CASCADE',
          }),
        ],
      }),
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropTable(authName('password_reset_tokens'));
    await queryRunner.dropTable(authName('users'));
  }
}
