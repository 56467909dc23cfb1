import { MigrationInterface, QueryRunner, Table, TableForeignKey, TableIndex } from 'typeorm';
import { authName } from '../options/table-prefix';

/**
 * Account self-service: pending email changes (a hashed single-use token bound to the new address and
 * the session that asked), and outbox messages that belong to no account, so that the goodbye notice of
 * a deleted account can wait for SMTP after its account is gone.
 */
export class AccountSelfService1764150000000 implements MigrationInterface {
  name = 'AccountSelfService1764150000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    const postgres = queryRunner.connection.driver.options.type === 'postgres';
    const timestamp = postgres ? 'timestamptz' : 'datetime';
    const now = postgres ? 'now()' : "(strftime('%Y-%m-%d %H:%M:%f', 'now'))";

    await queryRunner.createTable(
      new Table({
        name: authName('email_change_tokens'),
        columns: [
          { name: 'id', type: 'integer', isPrimary: true, isGenerated: true, generationStrategy: 'increment' },
          { name: 'user_id', type: 'integer' },
          { name: 'token_hash', type: 'varchar', length: '64' },
          { name: 'new_email', type: 'varchar', length: '254' },
          { name: 'session_id', type: 'varchar', length: '36', isNullable: true },
          { name: 'expires_at', type: timestamp },
          { name: 'used_at', type: timestamp, isNullable: true },
          { name: 'created_at', type: timestamp, default: now },
        ],
        indices: [
          new TableIndex({ name: authName('UQ_email_change_tokens_token_hash'), columnNames: ['token_hash'], isUnique: true }),
          new TableIndex({ name: authName('IDX_email_change_tokens_user_id'), columnNames: ['user_id'] }),
        ],
        foreignKeys: [
          new TableForeignKey({
            name: authName('FK_email_change_tokens_user_id'),
            columnNames: ['user_id'],
            referencedTableName: authName('users'),
            referencedColumnNames: ['id'],
            onDelete: 'CASCADE',
          }),
        ],
      }),
    );

    await this.setOutboxUserIdNullable(queryRunner, true);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    // Messages of deleted accounts cannot be put back under an account: they go.
    await queryRunner.query(`DELETE FROM ${queryRunner.connection.driver.escape(authName('mail_outbox'))} WHERE user_id IS NULL`);
    await this.setOutboxUserIdNullable(queryRunner, false);
    await queryRunner.dropTable(authName('email_change_tokens'));
  }

  /** Through TypeORM's schema API: an ALTER on PostgreSQL, a rebuild of the table on SQLite. */
  private async setOutboxUserIdNullable(queryRunner: QueryRunner, nullable: boolean): Promise<void> {
    const table = (await queryRunner.getTable(authName('mail_outbox')))!;
    const column = table.findColumnByName('user_id')!;
    const changed = column.clone();
    changed.isNullable = nullable;
    await queryRunner.changeColumn(table, column, changed);
  }
}
