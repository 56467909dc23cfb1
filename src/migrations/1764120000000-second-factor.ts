import { MigrationInterface, QueryRunner, Table, TableColumn, TableIndex } from 'typeorm';
import { authName } from '../options/table-prefix';

/** TOTP factors, recovery codes, pending second-factor sign-ins, and the assurance level of sessions. */
export class SecondFactor1764120000000 implements MigrationInterface {
  name = 'SecondFactor1764120000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    const postgres = queryRunner.connection.driver.options.type === 'postgres';
    const timestamp = postgres ? 'timestamptz' : 'datetime';
    const now = postgres ? 'now()' : "(strftime('%Y-%m-%d %H:%M:%f', 'now'))";
    const userForeignKey = (table: string) => ({
      name: authName(`FK_${table}_user_id`),
      columnNames: ['user_id'],
      referencedTableName: authName('users'),
      referencedColumnNames: ['id'],
      onDelete: 'CASCADE',
    });
    await queryRunner.addColumn(authName('users'), new TableColumn({ name: 'mfa_enabled', type: 'boolean', default: false }));
    await queryRunner.addColumns(authName('user_sessions'), [
      new TableColumn({ name: 'aal', type: 'varchar', length: '8', default: "'aal1'" }),
      new TableColumn({ name: 'amr', type: 'varchar', length: '32', default: "'pwd'" }),
    ]);
    await queryRunner.createTable(
      new Table({
        name: authName('totp_factors'),
        columns: [
          { name: 'user_id', type: 'integer', isPrimary: true },
          { name: 'secret', type: 'text' },
          { name: 'confirmed_at', type: timestamp, isNullable: true },
          { name: 'last_used_step', type: 'integer', isNullable: true },
          { name: 'created_at', type: timestamp },
        ],
        foreignKeys: [userForeignKey('totp_factors')],
      }),
    );
    await queryRunner.createTable(
      new Table({
        name: authName('recovery_codes'),
        columns: [
          { name: 'id', type: 'integer', isPrimary: true, isGenerated: true, generationStrategy: 'increment' },
          { name: 'user_id', type: 'integer' },
          { name: 'code_hash', type: 'varchar', length: '64' },
          { name: 'used_at', type: timestamp, isNullable: true },
          { name: 'created_at', type: timestamp },
        ],
        indices: [new TableIndex({ name: authName('IDX_recovery_codes_user_id'), columnNames: ['user_id'] })],
        foreignKeys: [userForeignKey('recovery_codes')],
      }),
    );
    await queryRunner.createTable(
      new Table({
        name: authName('mfa_challenges'),
        columns: [
          { name: 'id', type: 'integer', isPrimary: true, isGenerated: true, generationStrategy: 'increment' },
          { name: 'user_id', type: 'integer' },
          { name: 'token_hash', type: 'varchar', length: '64' },
          { name: 'token_version', type: 'integer' },
          { name: 'expires_at', type: timestamp },
          { name: 'used_at', type: timestamp, isNullable: true },
          { name: 'created_at', type: timestamp, default: now },
        ],
        indices: [
          new TableIndex({ name: authName('UQ_mfa_challenges_token_hash'), columnNames: ['token_hash'], isUnique: true }),
          new TableIndex({ name: authName('IDX_mfa_challenges_user_id'), columnNames: ['user_id'] }),
        ],
        foreignKeys: [userForeignKey('mfa_challenges')],
      }),
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropTable(authName('mfa_challenges'));
    await queryRunner.dropTable(authName('recovery_codes'));
    await queryRunner.dropTable(authName('totp_factors'));
    await queryRunner.dropColumns(authName('user_sessions'), ['aal', 'amr']);
    await queryRunner.dropColumn(authName('users'), 'mfa_enabled');
  }
}
