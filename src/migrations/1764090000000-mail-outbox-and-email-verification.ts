import { MigrationInterface, QueryRunner, Table, TableColumn, TableForeignKey, TableIndex } from 'typeorm';
import { authName } from '../options/table-prefix';

/**
 * The mail outbox, email verification tokens and the users' verified flag. Accounts that exist before
 * this migration start unverified: with `requireVerifiedEmail` they verify through resend-verification.
 */
export class MailOutboxAndEmailVerification1764090000000 implements MigrationInterface {
  name = 'MailOutboxAndEmailVerification1764090000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    const postgres = queryRunner.connection.driver.options.type === 'postgres';
    const timestamp = postgres ? 'timestamptz' : 'datetime';
    const now = postgres ? 'now()' : "(strftime('%Y-%m-%d %H:%M:%f', 'now'))";
    const userForeignKey = (table: string) =>
      new TableForeignKey({
        name: authName(`FK_${table}_user_id`),
        columnNames: ['user_id'],
        referencedTableName: authName('users'),
        referencedColumnNames: ['id'],
        onDelete: 'CASCADE',
      });

    await queryRunner.addColumns(authName('users'), [
      new TableColumn({ name: 'is_verified', type: 'boolean', default: false }),
      new TableColumn({ name: 'verified_at', type: timestamp, isNullable: true }),
    ]);

    await queryRunner.createTable(
      new Table({
        name: authName('email_verification_tokens'),
        columns: [
          { name: 'id', type: 'integer', isPrimary: true, isGenerated: true, generationStrategy: 'increment' },
          { name: 'user_id', type: 'integer' },
          { name: 'token_hash', type: 'varchar', length: '64' },
          { name: 'expires_at', type: timestamp },
          { name: 'used_at', type: timestamp, isNullable: true },
          { name: 'created_at', type: timestamp, default: now },
        ],
        indices: [
          new TableIndex({ name: authName('UQ_email_verification_tokens_token_hash'), columnNames: ['token_hash'], isUnique: true }),
          new TableIndex({ name: authName('IDX_email_verification_tokens_user_id'), columnNames: ['user_id'] }),
        ],
        foreignKeys: [userForeignKey('email_verification_tokens')],
      }),
    );

    await queryRunner.createTable(
      new Table({
        name: authName('mail_outbox'),
        columns: [
          { name: 'id', type: 'integer', isPrimary: true, isGenerated: true, generationStrategy: 'increment' },
          { name: 'kind', type: 'varchar', length: '32' },
          { name: 'user_id', type: 'integer' },
          { name: 'recipient', type: 'varchar', length: '254' },
          { name: 'status', type: 'varchar', length: '16', default: "'pending'" },
          { name: 'attempts', type: 'integer', default: 0 },
          { name: 'next_attempt_at', type: timestamp },
          { name: 'locked_until', type: timestamp, isNullable: true },
          { name: 'last_error', type: 'varchar', length: '500', isNullable: true },
          { name: 'created_at', type: timestamp },
          { name: 'sent_at', type: timestamp, isNullable: true },
        ],
        indices: [
          // The worker's poll: pending messages in due order.
          new TableIndex({ name: authName('IDX_mail_outbox_due'), columnNames: ['status', 'next_attempt_at'] }),
          // The per-account caps: recent messages of one kind for one user.
          new TableIndex({ name: authName('IDX_mail_outbox_user_kind_created'), columnNames: ['user_id', 'kind', 'created_at'] }),
        ],
        foreignKeys: [userForeignKey('mail_outbox')],
      }),
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropTable(authName('mail_outbox'));
    await queryRunner.dropTable(authName('email_verification_tokens'));
    await queryRunner.dropColumns(authName('users'), ['verified_at', 'is_verified']);
  }
}
